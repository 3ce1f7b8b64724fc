/* fm-modbus-sim: Modbus TCP test devices on loopback, on libmodbus's server
 * API, for the collector's integration tests and its benchmark.
 *
 *   fm-modbus-sim [--devices N] [--port P] [--size S]
 *
 * Serves N devices (default 1), each on its own port: P, P+1, ... or, with
 * P 0 (the default), a free port each. Each device has S (default 10000)
 * coils, discrete inputs, input and holding registers, all 0. Prints
 * "ports P1 P2 ..." once listening, then reads commands on stdin, one a
 * line, and answers each with one line ("ok", data, or "error ..."):
 *
 *   set D TABLE ADDR V...     TABLE co|di|ir|hr; bits take 0/1
 *   get D TABLE ADDR COUNT    prints the values
 *   seq D TABLE ADDR [N]      ADDR..ADDR+N-1 (ir|hr; N 1 when omitted) each count up by one
 *                             after every read of it
 *   illegal D TABLE ADDR N    requests touching ADDR..ADDR+N-1 get exception 2
 *   busy D TABLE ADDR N       ... exception 6 (server device busy)
 *   clear D                   no more illegal or busy ranges
 *   mute D 0|1                stop (1) or resume (0) answering; requests are read and dropped
 *   delay D MS                answer each request MS milliseconds late (every device waits meanwhile)
 *   drop D                    close every connection of D
 *   stats                     {"devices":[{"reads":R,"writes":W,"fc":[..],"conns":C,"accepts":A},...]}
 *
 * EOF on stdin ends it. Single-threaded: a poll() loop over everything.
 */
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 16
#define MAX_RANGES 16

enum table { CO, DI, IR, HR };

struct range {
	uint8_t table;
	uint16_t addr, n;
	uint8_t code;
};

struct device {
	modbus_t *ctx;
	modbus_mapping_t *map;
	int lfd;
	uint16_t port;
	int conns[MAX_CONNS];
	int n_conns;
	bool mute;
	unsigned delay_ms;
	struct range ranges[MAX_RANGES];
	int n_ranges;
	int seq_table, seq_addr, seq_n; /* seq_table -1: none */
	unsigned long reads, writes, fc[17], accepts;
};

static int table_of(const char *s)
{
	static const char *const names[] = { "co", "di", "ir", "hr" };
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static int listen_on(uint16_t port, uint16_t *bound)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 64))
		return -1;
	socklen_t len = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &len);
	*bound = ntohs(a.sin_port);
	return fd;
}

static uint16_t *regs_of(struct device *d, int t)
{
	return t == IR ? d->map->tab_input_registers : d->map->tab_registers;
}

static uint8_t *bits_of(struct device *d, int t)
{
	return t == DI ? d->map->tab_input_bits : d->map->tab_bits;
}

static void close_conn(struct device *d, int i)
{
	close(d->conns[i]);
	d->conns[i] = d->conns[--d->n_conns];
}

/* Serves one request on connection i of d. */
static void serve(struct device *d, int i)
{
	uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
	modbus_set_socket(d->ctx, d->conns[i]);
	int rc = modbus_receive(d->ctx, q);
	if (rc <= 0) {
		if (rc < 0)
			close_conn(d, i);
		return;
	}
	if (d->mute)
		return;
	if (d->delay_ms)
		usleep(d->delay_ms * 1000);
	int h = modbus_get_header_length(d->ctx);
	uint8_t fc = q[h];
	uint16_t addr = (uint16_t)(q[h + 1] << 8 | q[h + 2]);
	uint16_t n = (fc == 5 || fc == 6) ? 1 : (uint16_t)(q[h + 3] << 8 | q[h + 4]);
	int table = fc == 1 || fc == 5 || fc == 15 ? CO : fc == 2 ? DI : fc == 4 ? IR : HR;
	if (fc < 17)
		d->fc[fc]++;
	bool read = fc >= 1 && fc <= 4;
	if (read)
		d->reads++;
	else
		d->writes++;
	for (int r = 0; r < d->n_ranges; r++) {
		const struct range *g = &d->ranges[r];
		if (g->table == table && addr < g->addr + g->n && g->addr < addr + n) {
			modbus_reply_exception(d->ctx, q, g->code);
			return;
		}
	}
	modbus_reply(d->ctx, q, rc, d->map);
	for (int a = d->seq_addr; read && d->seq_table == table && a < d->seq_addr + d->seq_n; a++)
		if (a >= addr && a < addr + n)
			regs_of(d, table)[a]++;
}

static bool in_map(int size, long addr, long n)
{
	return addr >= 0 && n >= 0 && addr + n <= size;
}

static void command(struct device *devs, int n_dev, int size, char *line)
{
	char *save = NULL, *w[260];
	int n = 0;
	for (char *t = strtok_r(line, " \t\n", &save); t && n < 260; t = strtok_r(NULL, " \t\n", &save))
		w[n++] = t;
	if (!n)
		return;
	if (!strcmp(w[0], "stats")) {
		printf("{\"devices\":[");
		for (int i = 0; i < n_dev; i++) {
			struct device *d = &devs[i];
			printf("%s{\"reads\":%lu,\"writes\":%lu,\"conns\":%d,\"accepts\":%lu,\"fc\":[", i ? "," : "", d->reads,
			       d->writes, d->n_conns, d->accepts);
			for (int f = 0; f < 17; f++)
				printf("%s%lu", f ? "," : "", d->fc[f]);
			printf("]}");
		}
		printf("]}\n");
		return;
	}
	int di = n > 1 ? atoi(w[1]) : -1;
	if (di < 0 || di >= n_dev) {
		printf("error device\n");
		return;
	}
	struct device *d = &devs[di];
	int t = n > 2 ? table_of(w[2]) : -1;
	long addr = n > 3 ? atol(w[3]) : -1;
	if (!strcmp(w[0], "set") && t >= 0 && in_map(size, addr, n - 4)) {
		for (int k = 4; k < n; k++) {
			long v = strtol(w[k], NULL, 0);
			if (t == CO || t == DI)
				bits_of(d, t)[addr + k - 4] = v != 0;
			else
				regs_of(d, t)[addr + k - 4] = (uint16_t)v;
		}
	} else if (!strcmp(w[0], "get") && t >= 0 && n == 5 && in_map(size, addr, atol(w[4]))) {
		long c = atol(w[4]);
		for (long k = 0; k < c; k++)
			printf("%s%d", k ? " " : "", t == CO || t == DI ? bits_of(d, t)[addr + k] : regs_of(d, t)[addr + k]);
		printf("\n");
		return;
	} else if (!strcmp(w[0], "seq") && (t == IR || t == HR) && (n == 4 || n == 5) &&
		   in_map(size, addr, n == 5 ? atol(w[4]) : 1) && (n == 4 || atol(w[4]) >= 1)) {
		d->seq_table = t;
		d->seq_addr = (int)addr;
		d->seq_n = n == 5 ? (int)atol(w[4]) : 1;
	} else if ((!strcmp(w[0], "illegal") || !strcmp(w[0], "busy")) && t >= 0 && n == 5 &&
		   d->n_ranges < MAX_RANGES) {
		d->ranges[d->n_ranges++] = (struct range){ (uint8_t)t, (uint16_t)addr, (uint16_t)atol(w[4]),
							   w[0][0] == 'i' ? 2 : 6 };
	} else if (!strcmp(w[0], "clear")) {
		d->n_ranges = 0;
	} else if (!strcmp(w[0], "mute") && n == 3) {
		d->mute = atoi(w[2]) != 0;
	} else if (!strcmp(w[0], "delay") && n == 3) {
		d->delay_ms = (unsigned)atoi(w[2]);
	} else if (!strcmp(w[0], "drop")) {
		while (d->n_conns)
			close_conn(d, 0);
	} else {
		printf("error command\n");
		return;
	}
	printf("ok\n");
}

int main(int argc, char **argv)
{
	int n_dev = 1, size = 10000;
	long port = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--devices"))
			n_dev = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--port"))
			port = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--size"))
			size = atoi(argv[i + 1]);
	}
	if (n_dev < 1 || n_dev > 1000 || size < 1 || size > 65536 || port < 0 || port + n_dev > 65536) {
		fprintf(stderr, "usage: fm-modbus-sim [--devices N] [--port P] [--size S]\n");
		return 2;
	}
	struct device *devs = calloc((size_t)n_dev, sizeof *devs);
	printf("ports");
	for (int i = 0; i < n_dev; i++) {
		struct device *d = &devs[i];
		d->ctx = modbus_new_tcp("127.0.0.1", 502);
		d->map = modbus_mapping_new(size, size, size, size);
		d->lfd = listen_on(port ? (uint16_t)(port + i) : 0, &d->port);
		d->seq_table = -1;
		if (!d->ctx || !d->map || d->lfd < 0) {
			fprintf(stderr, "fm-modbus-sim: device %d: %s\n", i, strerror(errno));
			return 1;
		}
		printf(" %u", d->port);
	}
	printf("\n");
	fflush(stdout);
	struct pollfd *pf = calloc((size_t)n_dev * (MAX_CONNS + 1) + 1, sizeof *pf);
	char line[4096];
	size_t have = 0;
	for (;;) {
		int np = 0;
		pf[np++] = (struct pollfd){ .fd = 0, .events = POLLIN };
		for (int i = 0; i < n_dev; i++) {
			pf[np++] = (struct pollfd){ .fd = devs[i].lfd, .events = POLLIN };
			for (int k = 0; k < devs[i].n_conns; k++)
				pf[np++] = (struct pollfd){ .fd = devs[i].conns[k], .events = POLLIN };
		}
		if (poll(pf, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pf[0].revents) {
			ssize_t r = read(0, line + have, sizeof line - 1 - have);
			if (r <= 0)
				break;
			have += (size_t)r;
			line[have] = 0;
			char *nl;
			while ((nl = strchr(line, '\n'))) {
				*nl = 0;
				command(devs, n_dev, size, line);
				fflush(stdout);
				size_t used = (size_t)(nl + 1 - line);
				memmove(line, nl + 1, have - used + 1);
				have -= used;
			}
			if (have == sizeof line - 1)
				have = 0; /* a line too long: dropped */
		}
		/* Walk the same order as built; connections may close while serving,
		 * so each device's part is found again by its fds. */
		int p = 1;
		for (int i = 0; i < n_dev; i++) {
			struct device *d = &devs[i];
			struct pollfd lp = pf[p++];
			int nc = d->n_conns;
			int fds[MAX_CONNS];
			short rev[MAX_CONNS];
			for (int k = 0; k < nc; k++) {
				fds[k] = pf[p].fd;
				rev[k] = pf[p++].revents;
			}
			for (int k = 0; k < nc; k++) {
				if (!rev[k])
					continue;
				for (int j = 0; j < d->n_conns; j++)
					if (d->conns[j] == fds[k]) {
						serve(d, j);
						break;
					}
			}
			if (lp.revents) {
				int fd = accept(d->lfd, NULL, NULL);
				if (fd >= 0 && d->n_conns < MAX_CONNS) {
					d->conns[d->n_conns++] = fd;
					d->accepts++;
				} else if (fd >= 0) {
					close(fd);
				}
			}
		}
	}
	for (int i = 0; i < n_dev; i++) {
		for (int k = 0; k < devs[i].n_conns; k++)
			close(devs[i].conns[k]);
		close(devs[i].lfd);
		modbus_mapping_free(devs[i].map);
		modbus_free(devs[i].ctx);
	}
	free(pf);
	free(devs);
	return 0;
}
