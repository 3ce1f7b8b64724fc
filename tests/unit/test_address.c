/* src/base/address.c: hosts, ports and "HOST:PORT", every accepted form and
 * every refusal with its reason. */
#include <string.h>

#include "base/address.h"
#include "base/err.h"
#include "check.h"

#define ASSERT_HAS(err, part) do { if (!strstr((err), (part))) \
	CHECK_FAIL("\"%s\" lacks \"%s\"", (err), (part)); } while (0)

static void test_host(void)
{
	char err[160];
	ASSERT_EQ(address_host_check("127.0.0.1", err, sizeof err), 0);
	ASSERT_EQ(address_host_check("node-2.plant.example", err, sizeof err), 0);
	ASSERT_EQ(address_host_check("Node_3", err, sizeof err), 0);
	ASSERT_EQ(address_host_check("", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "empty host");
	ASSERT_EQ(address_host_check("::1", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "'::1': a host is a name or an IPv4 address");
	ASSERT_EQ(address_host_check("a b", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(address_host_check("host:1", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(address_host_check("h\xc3\xa9", err, sizeof err), -FM_EINVAL);
	char host[300];
	memset(host, 'a', sizeof host);
	host[255] = '\0';
	ASSERT_EQ(address_host_check(host, err, sizeof err), 0);
	host[255] = 'a';
	host[256] = '\0';
	ASSERT_EQ(address_host_check(host, err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "longer than 255");
	ASSERT_EQ(address_host_check("", NULL, 0), -FM_EINVAL); /* no room for a reason is fine */
}

static void test_port(void)
{
	uint16_t port = 7;
	ASSERT_EQ(address_port_parse("1", &port), 0);
	ASSERT_EQ(port, 1);
	ASSERT_EQ(address_port_parse("65535", &port), 0);
	ASSERT_EQ(port, 65535);
	ASSERT_EQ(address_port_parse("00080", &port), 0);
	ASSERT_EQ(port, 80);
	port = 7;
	static const char *const bad[] = { "", "0", "65536", "99999999999999999999", "-1", "+1", "80x", " 80", "8 0",
					   "0x50" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (address_port_parse(bad[i], &port) != -FM_EINVAL)
			CHECK_FAIL("port '%s' accepted", bad[i]);
	}
	ASSERT_EQ(port, 7); /* untouched by a refusal */
}

static void test_check(void)
{
	char err[300];
	ASSERT_EQ(address_check("127.0.0.1:9001", err, sizeof err), 0);
	ASSERT_EQ(address_check("node-2.plant.example:65535", err, sizeof err), 0);
	ASSERT_EQ(address_check("", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "empty address (expected HOST:PORT)");
	ASSERT_EQ(address_check("127.0.0.1", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "'127.0.0.1': expected HOST:PORT");
	ASSERT_EQ(address_check(":9001", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "no host before ':'");
	ASSERT_EQ(address_check("host:", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "no port after ':'");
	ASSERT_EQ(address_check("host:0", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "'host:0': the port is a number 1-65535");
	ASSERT_EQ(address_check("host:65536", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(address_check("host:1:2", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(address_check("::1:9001", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(address_check("[::1]:9001", err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "a host is a name or an IPv4 address");
	ASSERT_EQ(address_check("bad host:9001", err, sizeof err), -FM_EINVAL);
	char text[400];
	memset(text, 'a', sizeof text);
	strcpy(text + 256, ":1"); /* a 256-byte host fits ADDRESS_MAX but is no host */
	ASSERT_EQ(address_check(text, err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "host longer than 255 bytes");
	strcpy(text + 255, ":65535");
	ASSERT_EQ(address_check(text, err, sizeof err), 0);
	memset(text, 'a', sizeof text);
	strcpy(text + 300, ":1");
	ASSERT_EQ(address_check(text, err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "address longer than 271 bytes");
	ASSERT_EQ(address_check("x", NULL, 0), -FM_EINVAL);
}

static void test_split(void)
{
	char err[300], host[ADDRESS_HOST_MAX + 1];
	uint16_t port = 0;
	ASSERT_EQ(address_split("10.0.0.2:7883", host, sizeof host, &port, err, sizeof err), 0);
	ASSERT_STRN(host, strlen(host), "10.0.0.2");
	ASSERT_EQ(port, 7883);
	ASSERT_EQ(address_split("broker-b:1", host, sizeof host, &port, err, sizeof err), 0);
	ASSERT_STRN(host, strlen(host), "broker-b");
	ASSERT_EQ(port, 1);
	ASSERT_EQ(address_split("broker-b", host, sizeof host, &port, err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "expected HOST:PORT");
	char small[4];
	ASSERT_EQ(address_split("broker-b:1", small, sizeof small, &port, err, sizeof err), -FM_EINVAL);
	ASSERT_HAS(err, "host longer than 3 bytes");
	ASSERT_EQ(address_split("abc:2", small, sizeof small, &port, err, sizeof err), 0);
	ASSERT_STRN(small, strlen(small), "abc");
	ASSERT_EQ(port, 2);
}

int main(void)
{
	RUN(test_host);
	RUN(test_port);
	RUN(test_check);
	RUN(test_split);
	return CHECK_DONE();
}
