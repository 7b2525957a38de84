/* routes.c - names and URL paths, as plain functions of their bytes (no connection needed). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gw_internal.h"

#define NS_PREFIX "/api/v1/namespaces"

bool gw_name_valid(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n < SBX_NAME_MAX && strspn(name, GW_NAME_CHARS) == n;
}

bool gw_names_valid(const char *s)
{
	char part[SBX_NAME_MAX];

	while (*s) {
		size_t n = strcspn(s, "/");

		if (!n || n >= sizeof(part))
			return false;
		memcpy(part, s, n);
		part[n] = '\0';
		if (!gw_name_valid(part))
			return false;
		s += n + (s[n] == '/');
	}
	return true;
}

/* The next path segment of *p into seg (at most len-1 bytes); *p moves past it and its '/'. */
static size_t next_segment(const char **p, char *seg, size_t len)
{
	size_t n = strcspn(*p, "/");

	snprintf(seg, len, "%.*s", (int)(n < len ? n : len - 1), *p);
	*p += n + ((*p)[n] == '/');
	return n;
}

int gw_ow_route_parse(const char *url, struct gw_ow_route *rt)
{
	static const struct {
		const char *seg, *what;
	} unsupported_entities[] = {
		{"triggers", "triggers"},
		{"rules", "rules"},
		{"packages", "packages"},
		{"limits", "namespace limits"},
	};
	const char *p;
	char seg[96];
	size_t n;

	memset(rt, 0, sizeof(*rt));
	if (!strcmp(url, "/api/v1") || !strcmp(url, "/api/v1/")) {
		rt->route = GW_OW_API;
		return 0;
	}
	if (!strncmp(url, "/api/v1/web/", 12)) {
		rt->route = GW_OW_UNSUPPORTED;
		rt->what = "web actions";
		return 0;
	}
	if (strncmp(url, NS_PREFIX, strlen(NS_PREFIX)))
		return -ENOENT;
	p = url + strlen(NS_PREFIX);
	if (!*p || !strcmp(p, "/")) {
		rt->route = GW_OW_NAMESPACES;
		return 0;
	}
	if (*p++ != '/')
		return -ENOENT;
	n = next_segment(&p, rt->ns, sizeof(rt->ns));
	if (!n || n >= sizeof(rt->ns))
		return -ENOENT;
	if (!*p) {
		rt->route = GW_OW_NAMESPACE;
		return 0;
	}
	next_segment(&p, seg, sizeof(seg));
	for (size_t i = 0; i < sizeof(unsupported_entities) / sizeof(unsupported_entities[0]); i++)
		if (!strcmp(seg, unsupported_entities[i].seg)) {
			rt->route = GW_OW_UNSUPPORTED;
			rt->what = unsupported_entities[i].what;
			return 0;
		}
	if (!strcmp(seg, "actions")) {
		if (!*p) {
			rt->route = GW_OW_ACTIONS;
			return 0;
		}
		rt->route = strchr(p, '/') ? GW_OW_PACKAGE_ACTION : GW_OW_ACTION;
		snprintf(rt->name, sizeof(rt->name), "%s", p);
		if (rt->route == GW_OW_PACKAGE_ACTION ? !gw_names_valid(p) : !gw_name_valid(p))
			return -EINVAL;
		return 0;
	}
	if (!strcmp(seg, "activations")) {
		if (!*p) {
			rt->route = GW_OW_ACTIVATIONS;
			return 0;
		}
		n = next_segment(&p, rt->id, sizeof(rt->id));
		if (!n || n >= sizeof(rt->id))
			return -ENOENT;
		if (!*p)
			rt->route = GW_OW_ACTIVATION;
		else if (!strcmp(p, "result"))
			rt->route = GW_OW_ACTIVATION_RESULT;
		else if (!strcmp(p, "logs"))
			rt->route = GW_OW_ACTIVATION_LOGS;
		else
			return -ENOENT;
		return 0;
	}
	return -ENOENT;
}

static int split_name(const char *s, char name[SBX_NAME_MAX], const char **sub)
{
	size_t n = strcspn(s, "/");

	*sub = s + n;
	if (!n || n >= SBX_NAME_MAX)
		return -EINVAL;
	memcpy(name, s, n);
	name[n] = '\0';
	return gw_name_valid(name) ? 0 : -EINVAL;
}

int gw_faas_route_parse(const char *url, struct gw_faas_route *rt)
{
	static const struct {
		const char *path;
		enum gw_faas_route_kind kind;
	} fixed[] = {
		{"/system/functions", GW_FAAS_FUNCTIONS},
		{"/system/info", GW_FAAS_INFO},
		{"/system/namespaces", GW_FAAS_NAMESPACES},
		{"/system/logs", GW_FAAS_UNSUPPORTED},
		{"/system/alert", GW_FAAS_UNSUPPORTED},
		{"/system/secrets", GW_FAAS_UNSUPPORTED},
	};
	const char *name = NULL;

	memset(rt, 0, sizeof(*rt));
	rt->sub = "";
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!strcmp(url, fixed[i].path)) {
			rt->route = fixed[i].kind;
			rt->what = url;
			return 0;
		}
	if (!strncmp(url, "/system/secrets/", 16)) {
		rt->route = GW_FAAS_UNSUPPORTED;
		rt->what = "/system/secrets";
		return 0;
	}
	if (!strncmp(url, "/function/", 10)) {
		rt->route = GW_FAAS_FUNCTION;
		name = url + 10;
	} else if (!strncmp(url, "/async-function/", 16)) {
		rt->route = GW_FAAS_ASYNC;
		name = url + 16;
	} else if (!strncmp(url, "/system/function/", 17)) {
		rt->route = GW_FAAS_DESCRIBE;
		name = url + 17;
	} else if (!strncmp(url, "/system/scale-function/", 23)) {
		rt->route = GW_FAAS_SCALE;
		name = url + 23;
	} else {
		return -ENOENT;
	}
	/* invocations take a sub-path; the system routes name exactly one function */
	if (rt->route == GW_FAAS_FUNCTION || rt->route == GW_FAAS_ASYNC) {
		snprintf(rt->name, sizeof(rt->name), "%.*s", (int)strcspn(name, "/"), name);
		rt->sub = name + strcspn(name, "/");
		return split_name(name, rt->name, &rt->sub) ? -EINVAL : 0;
	}
	snprintf(rt->name, sizeof(rt->name), "%s", name);
	return gw_name_valid(name) ? 0 : -EINVAL;
}

/* ---- namespaces: a function's key ------------------------------------------------------------ */

bool gw_ns_valid(const char *ns)
{
	size_t n = strlen(ns);

	return n >= 1 && n < GW_NS_MAX && strspn(ns, GW_NAME_CHARS ".") == n && strcmp(ns, "_");
}

int gw_fn_key(const char *default_ns, const char *ns, const char *name, char key[SBX_NAME_MAX])
{
	int n = !strcmp(ns, default_ns) ? snprintf(key, SBX_NAME_MAX, "%s", name)
					: snprintf(key, SBX_NAME_MAX, "%s.%s", ns, name);

	return n < 0 || n >= SBX_NAME_MAX ? -ENAMETOOLONG : 0;
}

void gw_key_split(const char *default_ns, const char *key, char ns[GW_NS_MAX],
		  char name[SBX_NAME_MAX])
{
	const char *dot = strrchr(key, '.');

	if (!dot) {
		snprintf(ns, GW_NS_MAX, "%s", default_ns);
		snprintf(name, SBX_NAME_MAX, "%s", key);
		return;
	}
	snprintf(ns, GW_NS_MAX, "%.*s", (int)(dot - key), key);
	snprintf(name, SBX_NAME_MAX, "%s", dot + 1);
}

bool gw_key_valid(const char *key)
{
	const char *dot = strrchr(key, '.');
	char ns[GW_NS_MAX];

	if (strlen(key) >= SBX_NAME_MAX)
		return false;
	if (!dot)
		return gw_name_valid(key);
	if (dot == key || (size_t)(dot - key) >= sizeof(ns))
		return false;
	snprintf(ns, sizeof(ns), "%.*s", (int)(dot - key), key);
	return gw_ns_valid(ns) && gw_name_valid(dot + 1);
}

bool gw_key_in_ns(const char *default_ns, const char *key, const char *ns)
{
	const char *dot = strrchr(key, '.');
	size_t n = strlen(ns);

	if (!dot)
		return !strcmp(ns, default_ns);
	return (size_t)(dot - key) == n && !strncmp(key, ns, n);
}
