/* Client helpers every handler uses: the peer address and protocol as text,
 * the fields of a log line, the Reason String, and closing with a reason. */
#include "client.h"
#include "../base/log.h"
#include "../session/session.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

const char *client_addr_text(const struct client *c, char out[48])
{
	char ip[INET6_ADDRSTRLEN];
	if (!c->addr_family || !inet_ntop(c->addr_family, c->addr_ip, ip, sizeof ip))
		return "?";
	snprintf(out, 48, c->addr_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, c->addr_port);
	return out;
}

const char *client_protocol_name(uint8_t version)
{
	return version == MQTT_V5 ? "mqttv5" : version == MQTT_V311 ? "mqttv311" : "mqttv31";
}

const struct log_client *broker__client_who(const struct client *c, int rc, struct log_client *who, char addr[48])
{
	who->client_id = c->session ? c->session->client_id : NULL;
	who->address = client_addr_text(c, addr);
	who->identity = c->identity;
	who->username = c->username;
	who->protocol = client_protocol_name(c->version);
	who->reason_code = rc;
	return who;
}

const char *broker__client_name(const struct client *c)
{
	return c->session ? c->session->client_id : "(not connected)";
}

void broker__client_reason_string(const struct client *c, struct mqtt_props *pr, const char *why)
{
	if (!why || c->version != MQTT_V5 || !c->request_problem_info)
		return;
	pr->have |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
	pr->reason_string = (struct mqtt_bin){ (const uint8_t *)why, (uint32_t)strlen(why) };
}

void broker__client_disconnect(struct client *c, uint8_t rc, const char *why)
{
	if (c->state == CLIENT_CLOSING)
		return;
	if (c->version == MQTT_V5) {
		struct mqtt_reason r = { .rc = rc };
		/* DISCONNECT may carry a Reason String (v5 §3.14.2.2.3). Not checked:
		 * its size against the client's Maximum Packet Size [MQTT-3.14.2-3]. */
		if (why) {
			r.props.have |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
			r.props.reason_string = (struct mqtt_bin){ (const uint8_t *)why, (uint32_t)strlen(why) };
		}
		if (c->state == CLIENT_NEW) {
			struct mqtt_connack ack = { .rc = rc, .props = r.props };
			mqtt_encode_connack(c->b->ports.out(c), MQTT_V5, &ack);
		} else {
			mqtt_encode_reason(c->b->ports.out(c), MQTT_V5, MQTT_DISCONNECT, &r);
		}
	}
	log_client(LVL_NOTICE, WHO(c, rc), "client %s (%s, identity %s) disconnected: %s (0x%02x)",
		   broker__client_name(c), CLIENT_ADDR(c), OR_DASH(c->identity), why, rc);
	/* A server-initiated close is not a normal DISCONNECT: the will fires [MQTT-3.1.2-8]. */
	c->will_on_close = true;
	c->state = CLIENT_CLOSING;
	c->b->ports.close(c);
}
