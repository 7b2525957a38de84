/* version.h - the one version string every nemo program prints for --version. */
#ifndef NEMO_VERSION_H
#define NEMO_VERSION_H

/* Bumped by hand at a release; `git describe` is not available in an installed tree. */
#define NEMO_VERSION "0.9.0"

#endif
