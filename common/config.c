/* config.c - the key-table JSON parser shared by every nemo config. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/config.h"
#include "nemo/log.h"

int cfg_error(struct cfg_ctx *ctx, const char *path, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	if (ctx->err[0])
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path && path[0])
		snprintf(ctx->err, sizeof(ctx->err), "%s: key '%s': %s",
			 ctx->file ? ctx->file : "<config>", path, msg);
	else
		snprintf(ctx->err, sizeof(ctx->err), "%s: %s", ctx->file ? ctx->file : "<config>",
			 msg);
	if (!ctx->quiet)
		NEMO_ERR("config", "%s", ctx->err);
	return -EINVAL;
}

const char *cfg_join(char *buf, size_t len, const char *path, const char *key)
{
	if (!path || !path[0])
		snprintf(buf, len, "%s", key);
	else
		snprintf(buf, len, "%s.%s", path, key);
	return buf;
}

const char *cfg_index(char *buf, size_t len, const char *path, int i)
{
	snprintf(buf, len, "%s[%d]", path ? path : "", i);
	return buf;
}

static const char *json_type_name(const cJSON *item)
{
	if (cJSON_IsNumber(item))
		return "a number";
	if (cJSON_IsString(item))
		return "a string";
	if (cJSON_IsBool(item))
		return "a boolean";
	if (cJSON_IsNull(item))
		return "null";
	if (cJSON_IsArray(item))
		return "an array";
	if (cJSON_IsObject(item))
		return "an object";
	return "invalid";
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Above this many members, sort the names rather than compare every pair. */
#define UNIQUE_PAIRWISE_MAX 16

/* The first key of object `obj` that is given twice, NULL if none; -ENOMEM in *rc. */
static const char *duplicate_key(const cJSON *obj, int *rc)
{
	const char **names, *dup = NULL;
	const cJSON *a, *b;
	size_t n = 0, i;

	*rc = 0;
	cJSON_ArrayForEach (a, obj)
		n++;
	if (n < 2)
		return NULL;
	if (n <= UNIQUE_PAIRWISE_MAX) {
		for (a = obj->child; a; a = a->next)
			for (b = a->next; b; b = b->next)
				if (a->string && b->string && !strcmp(a->string, b->string))
					return a->string;
		return NULL;
	}
	names = malloc(n * sizeof(*names));
	if (!names) {
		*rc = -ENOMEM;
		return NULL;
	}
	i = 0;
	cJSON_ArrayForEach (a, obj)
		names[i++] = a->string ? a->string : "";
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 1; i < n && !dup; i++)
		if (!strcmp(names[i - 1], names[i]))
			dup = names[i];
	free(names);
	return dup;
}

static int check_unique(struct cfg_ctx *ctx, const char *path, const cJSON *item, bool deep)
{
	const cJSON *child;
	char kpath[256];
	int i = 0, rc;

	if (cJSON_IsObject(item)) {
		const char *dup = duplicate_key(item, &rc);

		if (rc) {
			cfg_error(ctx, path, "out of memory checking keys");
			return rc;
		}
		if (dup)
			return cfg_error(ctx, cfg_join(kpath, sizeof(kpath), path, dup),
					 "given more than once");
	}
	if (!deep || !(cJSON_IsObject(item) || cJSON_IsArray(item)))
		return 0;
	cJSON_ArrayForEach (child, item) {
		if (cJSON_IsObject(child) || cJSON_IsArray(child)) {
			if (cJSON_IsObject(item))
				cfg_join(kpath, sizeof(kpath), path,
					 child->string ? child->string : "");
			else
				cfg_index(kpath, sizeof(kpath), path, i);
			rc = check_unique(ctx, kpath, child, true);
			if (rc)
				return rc;
		}
		i++;
	}
	return 0;
}

int cfg_check_unique_keys(struct cfg_ctx *ctx, const char *path, const cJSON *item)
{
	return check_unique(ctx, path ? path : "", item, true);
}

int cfg_parse_object(struct cfg_ctx *ctx, const char *path, const cJSON *obj,
		     const struct cfg_key *table, void *dst)
{
	bool root = !path || !path[0];
	const cJSON *item;
	char kpath[256];
	int rc;

	if (!cJSON_IsObject(obj))
		return cfg_error(ctx, path, "expected an object, got %s", json_type_name(obj));
	/* the root checks the whole tree once; nested tables see trees already checked */
	rc = check_unique(ctx, root ? "" : path, obj, root);
	if (rc)
		return rc;
	cJSON_ArrayForEach (item, obj) {
		const struct cfg_key *k;

		for (k = table; k->name; k++)
			if (strcmp(k->name, item->string) == 0)
				break;
		cfg_join(kpath, sizeof(kpath), path, item->string);
		if (!k->name)
			return cfg_error(ctx, kpath, "unknown key");
		rc = k->parse(ctx, kpath, item, dst, k);
		if (rc)
			return rc;
	}
	for (const struct cfg_key *k = table; k->name; k++) {
		if (k->required && !cJSON_GetObjectItemCaseSensitive(obj, k->name))
			return cfg_error(ctx, cfg_join(kpath, sizeof(kpath), path, k->name),
					 "required key is missing");
	}
	return 0;
}

/* The line of `at` in `text`, counting from 1. */
static int line_of(const char *text, size_t len, const char *at)
{
	int line = 1;

	for (const char *p = text; at && p < at && p < text + len; p++)
		line += *p == '\n';
	return line;
}

/*
 * In well-formed JSON text, the first string that holds a \u0000 escape or a raw control
 * character; NULL if none. cJSON decodes \u0000 to a NUL byte and the C string ends there:
 * "victim\u0000x" would read as "victim". Raw control characters are not JSON at all.
 */
static const char *bad_string(const char *text, size_t len, const char **what)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '"') {
			in_string = !in_string;
		} else if (in_string && c < 0x20) {
			*what = "a raw control character";
			return text + i;
		} else if (in_string && c == '\\' && i + 1 < len) {
			if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4)) {
				*what = "\\u0000, which would cut it short";
				return text + i;
			}
			i++; /* the escaped character, whatever it is */
		}
	}
	return NULL;
}

cJSON *cfg_parse_json(struct cfg_ctx *ctx, const char *text, size_t len)
{
	const char *end = NULL, *bad, *what = NULL;
	cJSON *root;
	size_t used;
	int rc = 0;

	root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!root) {
		cfg_error(ctx, NULL, "malformed JSON near line %d", line_of(text, len, end));
		errno = EINVAL;
		return NULL;
	}
	used = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
	for (size_t i = used; i < len && !rc; i++)
		if (!text[i] || !strchr(" \t\r\n", text[i]))
			rc = cfg_error(ctx, NULL, "unexpected text after the JSON value, line %d",
				       line_of(text, len, text + i));
	bad = rc ? NULL : bad_string(text, used, &what);
	if (bad)
		rc = cfg_error(ctx, NULL, "a string near line %d holds %s", line_of(text, len, bad),
			       what);
	if (!rc)
		rc = cfg_check_unique_keys(ctx, "", root);
	if (rc) {
		cJSON_Delete(root);
		errno = -rc;
		return NULL;
	}
	return root;
}

cJSON *cfg_load_file(struct cfg_ctx *ctx, const char *file)
{
	FILE *f = fopen(file, "r");
	char *text = NULL;
	cJSON *root = NULL;
	int e = EINVAL;
	long len;

	ctx->file = file;
	if (!f) {
		int e = errno;

		cfg_error(ctx, NULL, "cannot open: %s", strerror(e));
		errno = e;
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		cfg_error(ctx, NULL, "cannot read: %s", strerror(errno));
		goto out;
	}
	if (len > 16 << 20) {
		cfg_error(ctx, NULL, "file is larger than 16 MiB");
		goto out;
	}
	text = malloc((size_t)len + 1);
	if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
		cfg_error(ctx, NULL, "cannot read: %s", strerror(errno ? errno : EIO));
		goto out;
	}
	text[len] = '\0';
	root = cfg_parse_json(ctx, text, (size_t)len);
	if (!root)
		e = errno;
out:
	free(text);
	fclose(f);
	if (!root)
		errno = e;
	return root;
}

static int number_in_range(struct cfg_ctx *ctx, const char *path, const cJSON *item,
			   const struct cfg_key *key, bool integer, double lo_default,
			   double hi_default, double *out)
{
	double v, lo = lo_default, hi = hi_default;

	if (!cJSON_IsNumber(item))
		return cfg_error(ctx, path, "expected %s, got %s",
				 integer ? "an integer" : "a number", json_type_name(item));
	v = item->valuedouble;
	if (integer && v != floor(v))
		return cfg_error(ctx, path, "expected an integer, got %g", v);
	if (key->min < key->max) {
		lo = key->min;
		hi = key->max;
	}
	if (v < lo || v > hi)
		return cfg_error(ctx, path, "%g is out of range [%g, %g]", v, lo, hi);
	*out = v;
	return 0;
}

int cfg_parse_u32(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		  const struct cfg_key *key)
{
	double v;
	int rc = number_in_range(ctx, path, item, key, true, 0, UINT32_MAX, &v);

	if (!rc) {
		uint32_t u = (uint32_t)v;

		memcpy((char *)dst + key->offset, &u, sizeof(u));
	}
	return rc;
}

int cfg_parse_u64(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		  const struct cfg_key *key)
{
	double v;
	/* JSON numbers are doubles: integers are exact up to 2^53 */
	int rc = number_in_range(ctx, path, item, key, true, 0, 9007199254740992.0, &v);

	if (!rc) {
		uint64_t u = (uint64_t)v;

		memcpy((char *)dst + key->offset, &u, sizeof(u));
	}
	return rc;
}

int cfg_parse_i32(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		  const struct cfg_key *key)
{
	double v;
	int rc = number_in_range(ctx, path, item, key, true, INT32_MIN, INT32_MAX, &v);

	if (!rc) {
		int32_t i = (int32_t)v;

		memcpy((char *)dst + key->offset, &i, sizeof(i));
	}
	return rc;
}

int cfg_parse_double(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		     const struct cfg_key *key)
{
	double v;
	int rc = number_in_range(ctx, path, item, key, false, -HUGE_VAL, HUGE_VAL, &v);

	if (!rc)
		memcpy((char *)dst + key->offset, &v, sizeof(v));
	return rc;
}

int cfg_parse_bool(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		   const struct cfg_key *key)
{
	bool b = cJSON_IsTrue(item);

	if (!cJSON_IsBool(item))
		return cfg_error(ctx, path, "expected true or false, got %s", json_type_name(item));
	memcpy((char *)dst + key->offset, &b, sizeof(b));
	return 0;
}

int cfg_parse_strbuf(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		     const struct cfg_key *key)
{
	size_t cap = (size_t)key->max, len;

	if (!cJSON_IsString(item))
		return cfg_error(ctx, path, "expected a string, got %s", json_type_name(item));
	len = strlen(item->valuestring);
	if (len == 0)
		return cfg_error(ctx, path, "must not be empty");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)item->valuestring[i];

		if (c < 0x20 || c == 0x7f)
			return cfg_error(ctx, path,
					 "holds a control character (0x%02x) at offset %zu", c, i);
	}
	if (len >= cap)
		return cfg_error(ctx, path, "longer than %zu characters", cap - 1);
	memcpy((char *)dst + key->offset, item->valuestring, len + 1);
	return 0;
}

int cfg_parse_enum(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		   const struct cfg_key *key)
{
	const char *const *names = key->arg;
	char choices[256] = "";

	if (!cJSON_IsString(item))
		return cfg_error(ctx, path, "expected a string, got %s", json_type_name(item));
	for (int i = 0; names[i]; i++) {
		if (strcmp(names[i], item->valuestring) == 0) {
			memcpy((char *)dst + key->offset, &i, sizeof(i));
			return 0;
		}
		snprintf(choices + strlen(choices), sizeof(choices) - strlen(choices), "%s%s",
			 i ? ", " : "", names[i]);
	}
	return cfg_error(ctx, path, "'%s' is not one of: %s", item->valuestring, choices);
}
