/* When a cluster node snapshots (store/replica.c): the nodes of a cluster
 * apply the same entries, so equal thresholds made them all copy their
 * databases at once (two followers busy copying left the leader without a
 * majority: it stepped down). Each node's thresholds are its own. */
#include "store/store_internal.h"
#include "check.h"

static void test_three_nodes_three_thresholds(void)
{
	uint64_t t1 = store__snapshot_threshold(64u << 20, 1);
	uint64_t t2 = store__snapshot_threshold(64u << 20, 2);
	uint64_t t3 = store__snapshot_threshold(64u << 20, 3);
	ASSERT_TRUE(t1 != t2 && t2 != t3 && t1 != t3);
	/* Never below the threshold asked for, at most twice it. */
	for (uint64_t id = 1; id <= 9; id++) {
		uint64_t t = store__snapshot_threshold(8192, id);
		ASSERT_TRUE(t >= 8192 && t <= 2 * 8192);
	}
	/* Spread by half the threshold: apart for as long as half the log
	 * between two snapshots takes to write. */
	ASSERT_EQ(store__snapshot_threshold(1000, 3), 1000);
	ASSERT_EQ(store__snapshot_threshold(1000, 1), 1500);
	ASSERT_EQ(store__snapshot_threshold(1000, 2), 2000);
}

int main(void)
{
	RUN(test_three_nodes_three_thresholds);
	return CHECK_DONE();
}
