/* Shared helpers of the liif_sr C kernels (plain C11, no torch headers). */
#ifndef LIIF_SR_KERNELS_COMMON_H
#define LIIF_SR_KERNELS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define LIIF_EXPORT __attribute__((visibility("default")))
#define LIIF_RESTRICT __restrict__

/* Return codes of the kernels (0: success). */
#define LIIF_OK 0
#define LIIF_ERR_WINDOW 1 /* a query reads a latent outside the prepared window */
#define LIIF_ERR_ARGS 2   /* unsupported sizes */

#endif
