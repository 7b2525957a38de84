/* config.h - JSON configs through a key table: unknown or ill-typed keys name the file and key. */
#ifndef NEMO_CONFIG_H
#define NEMO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/*
 * Where a parse is, and where its first error goes. `file` names the config file (or the
 * source: "request body"); `err` receives one line naming the file and the full key path
 * ("ports[1].queues"), which is also logged once by cfg_error() unless `quiet` is set
 * (the caller hands the message to a client, e.g. as an HTTP 400, and logs what it wants).
 */
struct cfg_ctx {
	const char *file;
	bool quiet;
	char err[512];
};

struct cfg_key;

/*
 * A key parser: read `item` into `dst + key->offset`. `path` is the dotted key path for
 * messages. Returns 0 or -EINVAL after calling cfg_error().
 */
typedef int (*cfg_parse_fn)(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			    const struct cfg_key *key);

/* One row of a key table. `min`/`max` bound integers and doubles; `arg` is parser-specific. */
struct cfg_key {
	const char *name;
	cfg_parse_fn parse;
	size_t offset;
	bool required;
	double min;
	double max;
	const void *arg;
};

/* Record the first error (later ones are dropped), log it, and return -EINVAL. */
int cfg_error(struct cfg_ctx *ctx, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Parse object `obj` at `path` ("" for the root) through `table` (ended by a NULL name)
 * into `dst`. Unknown keys, keys given twice, missing required keys and ill-typed values
 * are errors. At the root ("" or NULL) the whole tree is checked for keys given twice,
 * nested objects that no table describes (an "env" map, module configs) included.
 * Returns 0, -EINVAL, or -ENOMEM.
 */
int cfg_parse_object(struct cfg_ctx *ctx, const char *path, const cJSON *obj,
		     const struct cfg_key *table, void *dst);

/*
 * Check that no object in the tree under `item` (at `path`, "" for the root) holds the same
 * key twice. cJSON keeps both members and a lookup finds only the first, so two readers of
 * one document could disagree about it: every JSON that nemo accepts goes through this.
 * The error names the key path ("env.HOME: given more than once"). Returns 0, -EINVAL, or
 * -ENOMEM. Thread-safe; recursion is bounded by cJSON's nesting limit.
 */
int cfg_check_unique_keys(struct cfg_ctx *ctx, const char *path, const cJSON *item);

/*
 * Parse `len` bytes of JSON text (not necessarily NUL-terminated) from the source named in
 * ctx->file. Besides malformed JSON (the error gives the line), it refuses a key given
 * twice anywhere in the tree and a string holding \u0000, which C strings would cut short.
 * Returns the tree (free with cJSON_Delete) or NULL with ctx->err set and errno EINVAL (or
 * ENOMEM). Thread-safe: it does not use cJSON_GetErrorPtr().
 */
cJSON *cfg_parse_json(struct cfg_ctx *ctx, const char *text, size_t len);

/* Read and parse a JSON file as cfg_parse_json() does. Returns the tree or NULL with ctx->err
 * set and errno. */
cJSON *cfg_load_file(struct cfg_ctx *ctx, const char *file);

/* Build "path.key" or "path[i]" into buf. */
const char *cfg_join(char *buf, size_t len, const char *path, const char *key);
const char *cfg_index(char *buf, size_t len, const char *path, int i);

/* Stock parsers. Integers reject fractions and values outside [min, max] (when min < max). */
int cfg_parse_u32(struct cfg_ctx *, const char *, const cJSON *, void *, const struct cfg_key *);
int cfg_parse_u64(struct cfg_ctx *, const char *, const cJSON *, void *, const struct cfg_key *);
int cfg_parse_i32(struct cfg_ctx *, const char *, const cJSON *, void *, const struct cfg_key *);
int cfg_parse_double(struct cfg_ctx *, const char *, const cJSON *, void *, const struct cfg_key *);
int cfg_parse_bool(struct cfg_ctx *, const char *, const cJSON *, void *, const struct cfg_key *);
/*
 * A string copied into a char array whose size is (size_t)key->max. Empty is an error, and
 * so is a control character (names, paths and handlers never hold one; logs would).
 */
int cfg_parse_strbuf(struct cfg_ctx *, const char *, const cJSON *, void *, const struct cfg_key *);
/*
 * One of a set of names: key->arg points to a NULL-terminated array of strings; the index
 * of the match is stored as an int.
 */
int cfg_parse_enum(struct cfg_ctx *, const char *, const cJSON *, void *, const struct cfg_key *);

#define CFG_KEY(n, fn, type, field, req)                                                       \
	{                                                                                      \
		.name = (n), .parse = (fn), .offset = offsetof(type, field), .required = (req) \
	}
#define CFG_KEY_RANGE(n, fn, type, field, req, lo, hi)                                          \
	{                                                                                       \
		.name = (n), .parse = (fn), .offset = offsetof(type, field), .required = (req), \
		.min = (lo), .max = (hi)                                                        \
	}
#define CFG_KEY_STR(n, type, field, req)                                                 \
	{                                                                                \
		.name = (n), .parse = cfg_parse_strbuf, .offset = offsetof(type, field), \
		.required = (req), .max = (double)sizeof(((type *)0)->field)             \
	}
#define CFG_KEY_ENUM(n, type, field, req, names)                                       \
	{                                                                              \
		.name = (n), .parse = cfg_parse_enum, .offset = offsetof(type, field), \
		.required = (req), .arg = (names)                                      \
	}
#define CFG_KEY_END          \
	{                    \
		.name = NULL \
	}

#endif /* NEMO_CONFIG_H */
