/* libFuzzer target for the cluster's peer and address parsing
 * (src/cluster/address.c). Invariants (abort when broken):
 *  - a peer that parses has an id >= 1 and an address that
 *    cluster_address_check accepts, shorter than CLUSTER_ADDRESS_MAX;
 *  - an accepted address has exactly one ':' with a port 1-65535 after it;
 *  - a refusal always says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	char err[200];
	struct cluster_peer peer;
	memset(&peer, 0, sizeof peer);
	err[0] = '\0';
	if (cluster_peer_parse(text, &peer, err, sizeof err) == 0) {
		if (peer.id == 0 || strlen(peer.address) >= CLUSTER_ADDRESS_MAX)
			abort();
		if (cluster_address_check(peer.address, NULL, 0) != 0)
			abort();
	} else if (err[0] == '\0') {
		abort();
	}
	err[0] = '\0';
	if (cluster_address_check(text, err, sizeof err) == 0) {
		const char *colon = strchr(text, ':');
		if (!colon || strchr(colon + 1, ':'))
			abort();
		long port = strtol(colon + 1, NULL, 10);
		if (port < 1 || port > 65535)
			abort();
	} else if (err[0] == '\0') {
		abort();
	}
	free(text);
	return 0;
}
