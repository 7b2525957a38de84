/* report.c - nemo-gen's outputs: CSV rows, the live line, the human summary and the JSON one. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/log.h"
#include "gen_internal.h"

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

void gen_report_csv_header(FILE *out)
{
	fprintf(out, "t_s,target_pps,tx_pps,rx_pps,lost,lat_p50_us,lat_p99_us,lat_max_us\n");
}

void gen_report_csv_row(FILE *out, const struct gen_interval *iv)
{
	/* --max has no target: an empty cell, as for latency without samples */
	fprintf(out, "%.3f,", iv->t_s);
	if (!isnan(iv->target_pps))
		fprintf(out, "%.0f", iv->target_pps);
	fprintf(out, ",%.0f,%.0f,%lld,", iv->tx_pps, iv->rx_pps, (long long)iv->lost);
	/* no samples: empty cells, never a latency of 0 */
	if (iv->lat->count)
		fprintf(out, "%.3f,%.3f,%.3f\n", us(gen_hist_percentile(iv->lat, 50)),
			us(gen_hist_percentile(iv->lat, 99)), us(iv->lat->max_ns));
	else
		fprintf(out, ",,\n");
}

void gen_report_live(FILE *out, const struct gen_interval *iv)
{
	char p99[32] = "-", target[32] = "max";

	if (iv->lat->count)
		snprintf(p99, sizeof(p99), "%.1f us", us(gen_hist_percentile(iv->lat, 99)));
	if (!isnan(iv->target_pps))
		snprintf(target, sizeof(target), "%.0f", iv->target_pps);
	fprintf(out, "gen %7.1fs  target %9s  tx %9.0f  rx %9.0f pps  lost %lld  p99 %s\n", iv->t_s,
		target, iv->tx_pps, iv->rx_pps, (long long)iv->lost, p99);
}

static double rate(uint64_t n, double secs)
{
	return secs > 0 ? (double)n / secs : 0;
}

void gen_report_summary(FILE *out, const struct gen_totals *t, const char *profile_desc,
			uint32_t size, uint32_t flows)
{
	int64_t lost = (int64_t)t->sent - (int64_t)t->received;
	double target = t->duration_s > 0 ? t->target_pkts / t->duration_s : 0;
	double tx = rate(t->sent, t->duration_s);

	fprintf(out, "nemo-gen: %s, %u-byte frames, %u flow%s, %.3f s of sending\n",
		t->max_rate ? "max rate" : profile_desc, size, flows, flows == 1 ? "" : "s",
		t->duration_s);
	fprintf(out, "  sent        %12llu  (tx_dropped %llu, late_skipped %llu)\n",
		(unsigned long long)t->sent, (unsigned long long)t->tx_dropped,
		(unsigned long long)t->late_skipped);
	fprintf(out, "  received    %12llu  (unknown_rx %llu, replies %llu)\n",
		(unsigned long long)t->received, (unsigned long long)t->unknown_rx,
		(unsigned long long)t->replies);
	fprintf(out, "  lost        %12lld  (%.4f %%)\n", (long long)lost,
		t->sent ? 100.0 * (double)lost / (double)t->sent : 0.0);
	if (t->max_rate)
		fprintf(out, "  tx rate     %12.0f pps (max rate, no target)\n", tx);
	else
		fprintf(out, "  tx rate     %12.0f pps vs target %.0f pps (ratio %.4f)\n", tx,
			target, target > 0 ? tx / target : 0.0);
	fprintf(out, "  rx rate     %12.0f pps\n", rate(t->received, t->duration_s));
	if (t->loop_stalls)
		fprintf(out,
			"  stalls      %12llu  send-loop gaps over 100 us, longest %.0f us (the lcore "
			"was taken away)\n",
			(unsigned long long)t->loop_stalls, t->loop_max_gap_us);
	if (t->stamp_late)
		fprintf(out,
			"  stamp_late  %12llu  packets whose stamp was over 100 us old when the port "
			"took them\n",
			(unsigned long long)t->stamp_late);
	if (t->lat->count)
		fprintf(out,
			"  latency us  p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (%llu samples)\n",
			us(gen_hist_percentile(t->lat, 50)), us(gen_hist_percentile(t->lat, 99)),
			us(gen_hist_percentile(t->lat, 99.9)), us(t->lat->max_ns),
			(unsigned long long)t->lat->count);
	else
		fprintf(out, "  latency us  no samples (nothing came back)\n");
}

/* Round for readability: JSON readers do not need 17 significant digits of a rate. */
static double round_to(double v, double step)
{
	return round(v / step) * step;
}

static void add_lat(cJSON *o, const char *key, const struct gen_hist *h, double pct)
{
	if (!h->count)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddNumberToObject(o, key, round_to(us(gen_hist_percentile(h, pct)), 0.001));
}

cJSON *gen_report_json(const struct gen_totals *t)
{
	cJSON *o = cJSON_CreateObject();
	double target = t->duration_s > 0 ? t->target_pkts / t->duration_s : 0;
	double tx = rate(t->sent, t->duration_s);

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "sent", (double)t->sent);
	cJSON_AddNumberToObject(o, "probes_sent", (double)t->probes_sent);
	cJSON_AddNumberToObject(o, "received", (double)t->received);
	cJSON_AddNumberToObject(o, "lost", (double)((int64_t)t->sent - (int64_t)t->received));
	cJSON_AddNumberToObject(o, "tx_dropped", (double)t->tx_dropped);
	cJSON_AddNumberToObject(o, "duration_s", round_to(t->duration_s, 1e-6));
	if (t->max_rate)
		cJSON_AddNullToObject(o, "target_pps_avg");
	else
		cJSON_AddNumberToObject(o, "target_pps_avg", round_to(target, 0.1));
	cJSON_AddNumberToObject(o, "tx_pps", round_to(tx, 0.1));
	cJSON_AddNumberToObject(o, "rx_pps", round_to(rate(t->received, t->duration_s), 0.1));
	add_lat(o, "lat_p50_us", t->lat, 50);
	add_lat(o, "lat_p99_us", t->lat, 99);
	add_lat(o, "lat_p999_us", t->lat, 99.9);
	if (t->lat->count)
		cJSON_AddNumberToObject(o, "lat_max_us", round_to(us(t->lat->max_ns), 0.001));
	else
		cJSON_AddNullToObject(o, "lat_max_us");
	cJSON_AddNumberToObject(o, "unknown_rx", (double)t->unknown_rx);
	cJSON_AddNumberToObject(o, "replies", (double)t->replies);
	if (t->lat_reply && t->replies) {
		/* a function's replies and the forwarded frames, apart */
		struct gen_hist *other = malloc(sizeof(*other));

		add_lat(o, "reply_lat_p50_us", t->lat_reply, 50);
		add_lat(o, "reply_lat_p99_us", t->lat_reply, 99);
		if (other) {
			memcpy(other, t->lat, sizeof(*other));
			gen_hist_subtract(other, t->lat_reply);
			add_lat(o, "other_lat_p50_us", other, 50);
			add_lat(o, "other_lat_p99_us", other, 99);
			add_lat(o, "other_lat_p999_us", other, 99.9);
			free(other);
		}
	}
	/* beyond the required keys: what explains a shortfall */
	cJSON_AddNumberToObject(o, "late_skipped", (double)t->late_skipped);
	cJSON_AddNumberToObject(o, "alloc_failed", (double)t->alloc_failed);
	cJSON_AddNumberToObject(o, "loop_stalls", (double)t->loop_stalls);
	cJSON_AddNumberToObject(o, "loop_max_gap_us", round_to(t->loop_max_gap_us, 0.1));
	cJSON_AddNumberToObject(o, "stamp_late", (double)t->stamp_late);
	cJSON_AddBoolToObject(o, "max_rate", t->max_rate);
	if (!t->max_rate && target > 0)
		cJSON_AddNumberToObject(o, "tx_ratio", round_to(tx / target, 1e-5));
	return o;
}

int gen_report_write_json(const char *path, const struct gen_totals *t)
{
	cJSON *o = gen_report_json(t);
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	FILE *f;
	int rc = 0;

	cJSON_Delete(o);
	if (!text) {
		NEMO_ERR("gen", "--json %s: out of memory", path);
		return -ENOMEM;
	}
	f = fopen(path, "w");
	if (!f || fprintf(f, "%s\n", text) < 0) {
		rc = -errno;
		NEMO_ERR("gen", "--json %s: %s", path, strerror(errno));
	}
	if (f && fclose(f) && !rc) {
		rc = -errno;
		NEMO_ERR("gen", "--json %s: %s", path, strerror(errno));
	}
	free(text);
	return rc;
}
