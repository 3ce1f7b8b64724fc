/* The broker seen from outside: RSS and CPU from /proc, store size like du.
 * Only the main thread samples; nothing here touches a connection. */
#define _XOPEN_SOURCE 700
#include "bench.h"
#include "base/clock.h"
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t probe_rss_kb(int pid)
{
	char path[64], line[256];
	uint64_t kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtoull(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

int64_t probe_cpu_ticks(int pid)
{
	char path[64], line[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = 0;
	/* The command name may hold spaces and parentheses: fields count from
	 * the last ')'. utime and stime are fields 14 and 15, i.e. the 12th
	 * and 13th after it. */
	char *p = strrchr(line, ')');
	if (!p)
		return -1;
	p++;
	long long v[13];
	for (int i = 0; i < 13; i++) {
		char *end;
		while (*p == ' ')
			p++;
		v[i] = strtoll(p, &end, 10);
		if (end == p && i >= 1)
			return -1;
		if (end == p) /* the state letter */
			end = p + 1;
		p = end;
	}
	return v[11] + v[12];
}

/* nftw has no user pointer: one walk at a time (main thread only). */
static uint64_t dir_total;

static int dir_add(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)type;
	(void)ftw;
	dir_total += (uint64_t)st->st_blocks * 512u;
	return 0;
}

uint64_t probe_dir_bytes(const char *path)
{
	dir_total = 0;
	if (!path || nftw(path, dir_add, 16, FTW_PHYS) < 0)
		return 0;
	return dir_total;
}

void probe_sample(struct probe *pr)
{
	uint64_t now = clock_mono_us();
	if (pr->pid) {
		int64_t cpu = probe_cpu_ticks(pr->pid);
		uint64_t rss = probe_rss_kb(pr->pid);
		if (!pr->n)
			pr->cpu_first = cpu;
		pr->cpu_last = cpu;
		pr->rss_last = rss;
		if (rss > pr->rss_max)
			pr->rss_max = rss;
	}
	if (pr->dir) {
		uint64_t s = probe_dir_bytes(pr->dir);
		if (!pr->n)
			pr->store_first = s;
		pr->store_last = s;
		if (s > pr->store_max)
			pr->store_max = s;
	}
	if (!pr->n)
		pr->t_first = now;
	pr->t_last = now;
	pr->n++;
}

double probe_cpu_pct(const struct probe *pr)
{
	if (pr->n < 2 || pr->cpu_first < 0 || pr->cpu_last < 0 || pr->t_last <= pr->t_first)
		return 0;
	double secs = (double)(pr->t_last - pr->t_first) / 1e6;
	return (double)(pr->cpu_last - pr->cpu_first) / (double)sysconf(_SC_CLK_TCK) / secs * 100.0;
}
