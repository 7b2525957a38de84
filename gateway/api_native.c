/* api_native.c - nemo's own routes: /api/v1/status and /api/v1/cores (nemoctl, operators). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nemo/cgroup.h"
#include "nemo/version.h"
#include "gw_internal.h"

struct list_arg {
	struct gw_daemon *d;
	cJSON *arr;
	const char *ns;
};

static void add_fn(void *arg, struct gw_function *fn)
{
	struct list_arg *la = arg;

	if (!strcmp(fn->ns, la->ns))
		cJSON_AddItemToArray(la->arr, gw_fn_json(la->d, fn, false));
}

/* The daemon's state, and the functions of the caller's namespace. */
static void route_status(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	cJSON *j = cJSON_CreateObject(), *dm, *fns;

	dm = cJSON_AddObjectToObject(j, "daemon");
	cJSON_AddStringToObject(dm, "status", d->draining ? "draining" : "serving");
	cJSON_AddStringToObject(dm, "version", NEMO_VERSION);
	cJSON_AddNumberToObject(dm, "pid", getpid());
	cJSON_AddNumberToObject(dm, "uptime_s", (double)(gw_epoch_ms() - d->started_ms) / 1e3);
	cJSON_AddStringToObject(dm, "backend", d->backend.ops->name);
	if (d->backend.ops->host)
		cJSON_AddStringToObject(
			dm, "cgroup",
			sbx_host_cgroup_backend(d->backend.ops->host(d->backend.state)));
	cJSON_AddStringToObject(dm, "dispatcher", d->dispatch.ops->name);
	cJSON_AddNumberToObject(dm, "inflight", atomic_load(&d->inflight));
	cJSON_AddNumberToObject(dm, "async_queue", d->q_len);
	cJSON_AddStringToObject(dm, "store", d->cfg.store_dir);
	if (d->mqtt)
		cJSON_AddBoolToObject(dm, "mqtt_connected", gw_mqtt_connected(d->mqtt));
	fns = cJSON_AddArrayToObject(j, "functions");
	{
		struct list_arg la = {d, fns, gw_req_ns(d, r)};

		gw_fn_foreach(d, add_fn, &la);
	}
	gw_reply_json(rp, 200, j);
}

/*
 * GET /api/v1/cores: the NF cores as the co-scheduler sees them, for nemoctl top. With
 * harvesting off, "harvest" is false and the array is empty.
 */
static void route_cores(struct gw_daemon *d, struct gw_reply *rp)
{
	struct sched_cosched_core *cores = NULL;
	cJSON *j = cJSON_CreateObject(), *arr;
	int n = 0;

	cJSON_AddBoolToObject(j, "harvest", d->dispatch.ops->cores != NULL);
	cJSON_AddStringToObject(j, "dispatcher", d->dispatch.ops->name);
	arr = cJSON_AddArrayToObject(j, "cores");
	if (d->dispatch.ops->cores) {
		cores = calloc(64, sizeof(*cores));
		n = cores ? d->dispatch.ops->cores(d->dispatch.state, cores, 64) : 0;
	}
	for (int i = 0; i < n; i++) {
		const struct sched_cosched_core *k = &cores[i];
		cJSON *o = cJSON_CreateObject(), *st;

		cJSON_AddNumberToObject(o, "cpu", k->s.cpu);
		cJSON_AddBoolToObject(o, "up", k->up);
		cJSON_AddNumberToObject(o, "busy_ratio", k->busy_ratio);
		cJSON_AddNumberToObject(o, "spare_ratio", k->spare_ratio);
		cJSON_AddNumberToObject(o, "spare_pred", k->s.spare_pred);
		cJSON_AddNumberToObject(o, "harvested_ratio", k->harvested_ratio);
		cJSON_AddNumberToObject(o, "harvest_ratio", k->s.harvest_ratio);
		cJSON_AddNumberToObject(o, "spare_seconds_total", k->spare_s_total);
		cJSON_AddNumberToObject(o, "harvested_seconds_total", k->harvested_s_total);
		cJSON_AddNumberToObject(o, "sampled_seconds_total", k->total_s_total);
		cJSON_AddNumberToObject(o, "warm", k->s.warm);
		cJSON_AddNumberToObject(o, "frozen", k->s.frozen);
		cJSON_AddNumberToObject(o, "moved", (double)k->s.moved);
		cJSON_AddNumberToObject(o, "throttled", (double)k->s.throttled);
		cJSON_AddNumberToObject(o, "runnable", k->s.runnable);
		cJSON_AddNumberToObject(o, "thread_cap", k->s.thread_cap);
		cJSON_AddNumberToObject(o, "sleep_floor_us", k->s.sleep_floor_us);
		cJSON_AddBoolToObject(o, "reclaimed", k->reclaimed);
		cJSON_AddNumberToObject(o, "moved_to", k->moved_to);
		cJSON_AddNumberToObject(o, "reclaims", (double)k->reclaims);
		cJSON_AddNumberToObject(o, "reaction_last_ms", k->reaction_last_ns / 1e6);
		cJSON_AddNumberToObject(o, "reaction_max_ms", k->reaction_max_ns / 1e6);
		cJSON_AddNumberToObject(o, "reaction_mean_ms",
					k->reclaims ? k->reaction_sum_ns / 1e6 / (double)k->reclaims
						    : 0.0);
		cJSON_AddNumberToObject(o, "invocations", (double)k->invocations);
		cJSON_AddNumberToObject(o, "prewarmed", (double)k->prewarmed);
		st = cJSON_AddObjectToObject(o, "starts");
		for (int p = SBX_START_COLD; p < SBX_START_PATHS; p++)
			cJSON_AddNumberToObject(st, sbx_start_path_name(p), (double)k->starts[p]);
		cJSON_AddStringToObject(o, "interference_counters", k->iw_counters);
		cJSON_AddItemToArray(arr, o);
	}
	free(cores);
	gw_reply_json(rp, 200, j);
}

void gw_api_native(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	if (!strcmp(r->url, "/api/v1/cluster") || !strncmp(r->url, "/api/v1/cluster/", 16))
		return gw_api_cluster(d, r, rp);
	if (!strcmp(r->url, "/api/v1/status")) {
		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		return route_status(d, r, rp);
	}
	if (!strcmp(r->url, "/api/v1/cores")) {
		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		return route_cores(d, rp);
	}
	gw_reply_error(rp, 404, "no route for %s %.200s", r->method, r->url);
}
