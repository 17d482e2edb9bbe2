/* Operator control socket: a UNIX stream socket (root only) answering one
 * request per connection; siltctl is the client. */
#ifndef SILT_CTL_H
#define SILT_CTL_H

struct silt_vol;
struct silt_ctl;

int ctl_start(struct silt_vol *v, const char *path, struct silt_ctl **out);
void ctl_stop(struct silt_ctl *c);

#endif
