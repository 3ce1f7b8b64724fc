/* Unit tests of the bridge's pure parts: topic remapping, data reduction
 * (and its JSON number reader), the token bucket, and the spool's memory. */
#include "check.h"
#include "bridge/internal.h"
#include "bridge/remap.h"
#include <math.h>

static struct bridge_topic line(const char *pattern, uint8_t dir, const char *lp, const char *rp)
{
	struct bridge_topic t = { .direction = dir };
	snprintf(t.pattern, sizeof t.pattern, "%s", pattern);
	snprintf(t.local_prefix, sizeof t.local_prefix, "%s", lp);
	snprintf(t.remote_prefix, sizeof t.remote_prefix, "%s", rp);
	return t;
}

#define OUT_OF(t, topic, buf) remap_out(&(t), topic, strlen(topic), buf, sizeof buf)
#define IN_OF(t, topic, buf) remap_in(&(t), topic, strlen(topic), buf, sizeof buf)

static void test_remap(void)
{
	char o[128];
	struct bridge_topic t = line("machines/#", BRIDGE_OUT, "", "plant-detroit/");
	int n = OUT_OF(t, "machines/chiller-01/temperature", o);
	ASSERT_STRN(o, n, "plant-detroit/machines/chiller-01/temperature");
	ASSERT_EQ(OUT_OF(t, "offices/temperature", o), -1);
	ASSERT_EQ(IN_OF(t, "plant-detroit/machines/x", o), -1); /* out only */
	t = line("+/setpoint", BRIDGE_BOTH, "site/", "cloud/site/");
	n = OUT_OF(t, "site/chiller/setpoint", o);
	ASSERT_STRN(o, n, "cloud/site/chiller/setpoint");
	n = IN_OF(t, "cloud/site/press/setpoint", o);
	ASSERT_STRN(o, n, "site/press/setpoint");
	ASSERT_EQ(IN_OF(t, "cloud/site/a/b/setpoint", o), -1); /* '+' is one level */
	ASSERT_EQ(OUT_OF(t, "site/", o), -1);                   /* nothing after the prefix */
	ASSERT_EQ(remap_out(&t, "site/x/setpoint", 15, o, 10), -1); /* does not fit */
	ASSERT_TRUE(remap_is_echo(&t, "cloud/site/x/setpoint", 21));
	ASSERT_FALSE(remap_is_echo(&t, "cloud/other/x/setpoint", 22));
	t.direction = BRIDGE_IN;
	ASSERT_FALSE(remap_is_echo(&t, "cloud/site/x/setpoint", 21)); /* not sent by us */
	n = remap_remote_filter(&t, o, sizeof o);
	ASSERT_STRN(o, n, "cloud/site/+/setpoint");
}

static bool num(const char *payload, const char *field, double *v)
{
	return reduce_number((const uint8_t *)payload, strlen(payload), field, v);
}

static void test_reduce_number(void)
{
	double v = 0;
	ASSERT_TRUE(num(" 21.5 ", NULL, &v) && v == 21.5);
	ASSERT_TRUE(num("-1e3", "", &v) && v == -1000);
	ASSERT_FALSE(num("21.5C", NULL, &v));
	ASSERT_FALSE(num("", NULL, &v));
	ASSERT_FALSE(num("nan", NULL, &v));
	ASSERT_FALSE(num("1.", NULL, &v));
	ASSERT_FALSE(num("1e999", NULL, &v)); /* not finite */
	ASSERT_TRUE(num("{\"value\": 3.25}", "value", &v) && v == 3.25);
	ASSERT_TRUE(num("{\"unit\":\"C\",\"meta\":{\"value\":9,\"x\":[1,{\"a\":\"}\"}]},\"value\":-2}", "value", &v) &&
		    v == -2);
	ASSERT_TRUE(num("{\"s\":\"a\\\"value\\\": 5\", \"value\":7}", "value", &v) && v == 7);
	ASSERT_FALSE(num("{\"value\": \"7\"}", "value", &v)); /* a string is not a number */
	ASSERT_FALSE(num("{\"other\": 7}", "value", &v));
	ASSERT_FALSE(num("[7]", "value", &v));
	ASSERT_FALSE(num("{\"value\" 7}", "value", &v));
}

#define P(s) (const uint8_t *)(s), strlen(s)

static void test_reduce_verdicts(void)
{
	struct bridge_topic t = line("#", BRIDGE_OUT, "", "");
	struct reduce_state st = { 0 };
	t.report_by_exception = true;
	ASSERT_EQ(reduce_check(&t, &st, P("on"), 0), REDUCE_SEND);
	reduce_sent(&t, &st, P("on"), 0);
	ASSERT_EQ(reduce_check(&t, &st, P("on"), 10), REDUCE_DROP);
	ASSERT_EQ(reduce_check(&t, &st, P("off"), 10), REDUCE_SEND);

	t = line("#", BRIDGE_OUT, "", "");
	t.has_deadband = true;
	t.deadband = 0.5;
	memset(&st, 0, sizeof st);
	reduce_sent(&t, &st, P("10"), 0);
	ASSERT_EQ(reduce_check(&t, &st, P("10.4"), 1), REDUCE_DROP);
	ASSERT_EQ(reduce_check(&t, &st, P("10.5"), 1), REDUCE_SEND); /* VALUE or more */
	ASSERT_EQ(reduce_check(&t, &st, P("9.5"), 1), REDUCE_SEND);
	ASSERT_EQ(reduce_check(&t, &st, P("n/a"), 1), REDUCE_SEND);  /* not a number: passes */

	t = line("#", BRIDGE_OUT, "", "");
	t.min_interval = 2;
	memset(&st, 0, sizeof st);
	reduce_sent(&t, &st, P("1"), 1000);
	ASSERT_EQ(reduce_check(&t, &st, P("2"), 2999), REDUCE_HOLD);
	ASSERT_EQ(reduce_check(&t, &st, P("2"), 3000), REDUCE_SEND);
	ASSERT_FALSE(reduce_enabled(&(struct bridge_topic){ 0 }));
}

#define GET(t, line, topic) reduce_table_get(&(t), line, topic, strlen(topic))

static void test_reduce_table_is_bounded(void)
{
	struct topic_table t = { .max = 4 };
	struct reduce_entry *a = GET(t, 0, "a");
	ASSERT_TRUE(a != NULL);
	ASSERT_TRUE(GET(t, 0, "a") == a);
	ASSERT_TRUE(GET(t, 1, "a") != a); /* per topic line */
	GET(t, 0, "b");
	GET(t, 0, "c");
	ASSERT_EQ(t.map.count, 4);
	a->pending = (struct msg *)&t; /* holds a value: never forgotten */
	char topic[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(topic, sizeof topic, "unique/%d", i);
		ASSERT_TRUE(GET(t, 0, topic) != NULL);
		ASSERT_EQ(t.map.count, 4);
	}
	ASSERT_EQ(t.forgotten, 1000);
	ASSERT_TRUE(GET(t, 0, "a") == a);
	ASSERT_EQ(t.map.shift, HMAP_MIN_SHIFT); /* never grown past its first size */
	/* Every entry holding a value: no room, the caller forwards unreduced. */
	size_t pos = 0;
	for (struct topic_entry *e; (e = topic_table_next(&t, &pos));)
		((struct reduce_entry *)e)->pending = (struct msg *)&t;
	ASSERT_TRUE(GET(t, 0, "new") == NULL);
	ASSERT_EQ(t.map.count, 4);
	topic_table_free(&t);
	ASSERT_EQ(t.map.count, 0);
}

static void test_bucket(void)
{
	struct token_bucket b;
	bucket_init(&b, 100, 0); /* 100/s: holds 10 */
	int sent = 0;
	for (uint64_t now = 0; now <= 1000000; now += 1000) /* a second, polled every ms */
		while (!bucket_wait(&b, now)) {
			bucket_charge(&b, 1);
			sent++;
		}
	ASSERT_EQ(sent, 110); /* the burst, then exactly the rate */
	bucket_init(&b, 1000, 0);
	ASSERT_EQ(bucket_wait(&b, 0), 0);
	bucket_charge(&b, 5000); /* a large message goes at once, then pays */
	ASSERT_EQ(bucket_wait(&b, 0), 4900001);
	ASSERT_EQ(bucket_wait(&b, 4900001), 0);
	bucket_init(&b, 0, 0);
	ASSERT_EQ(bucket_wait(&b, 0), 0); /* no rate: never waits */
}

static void test_spool_blocks(void)
{
	struct spool sp;
	ASSERT_EQ(spool_init(&sp), 0);
	struct msg *m = msg_new("t", 1, NULL, 0, (const uint8_t *)"abc", 3, 1, false);
	uint64_t n = SPOOL_BLOCK * 3 + 10;
	for (uint64_t i = 0; i < n; i++)
		ASSERT_EQ(spool_push(&sp, i % 2 ? m : NULL, 100 + i, 3, 0, SP_COMMITTED), 0);
	ASSERT_EQ(sp.count, n);
	ASSERT_EQ(sp.bytes, n * 3);
	ASSERT_EQ(sp.nblocks, 4);
	ASSERT_EQ(spool_at(&sp, 1 + 2)->msg_id, 102);
	/* Out of order: the head moves only past gone entries. */
	ASSERT_TRUE(spool_remove(&sp, 2));
	ASSERT_EQ(sp.head, 1);
	ASSERT_TRUE(spool_remove(&sp, 1));
	ASSERT_EQ(sp.head, 3);
	ASSERT_FALSE(spool_remove(&sp, 2)); /* twice */
	for (uint64_t s = 3; s < 1 + SPOOL_BLOCK * 2; s++)
		spool_remove(&sp, s);
	ASSERT_EQ(sp.nblocks, 2); /* the two blocks behind the head are freed */
	ASSERT_EQ(spool_at(&sp, sp.head)->msg_id, 100 + SPOOL_BLOCK * 2);
	for (uint64_t s = sp.head; s < sp.tail; s++)
		spool_remove(&sp, s);
	ASSERT_EQ(sp.count, 0);
	ASSERT_EQ(sp.bytes, 0);
	ASSERT_EQ(sp.nblocks, 1); /* an empty spool keeps one block */
	ASSERT_EQ(spool_push(&sp, m, 0, 3, 0, 0), 0);
	ASSERT_EQ(spool_at(&sp, sp.tail - 1)->msg, m);
	spool_free(&sp);
	ASSERT_EQ(atomic_load(&m->refs), 1); /* the spool's references are all back */
	msg_unref(m);
}

int main(void)
{
	RUN(test_remap);
	RUN(test_reduce_number);
	RUN(test_reduce_verdicts);
	RUN(test_reduce_table_is_bounded);
	RUN(test_bucket);
	RUN(test_spool_blocks);
	return CHECK_DONE();
}
