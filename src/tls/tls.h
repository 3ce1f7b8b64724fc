/* TLS with OpenSSL 3 over memory BIOs: the network layer reads and writes
 * the socket itself and hands ciphertext in and out, so TLS runs on the same
 * libuv loop as plain TCP. Contexts are built per listener (and rebuilt on
 * SIGHUP); a session is the state of one connection. */
#ifndef FM_TLS_H
#define FM_TLS_H
#include "../base/buf.h"
#include "../config/config.h"
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_session;

/* Where decrypted bytes go. Returns 0, or <0 to stop reading (the connection
 * is closing). */
typedef int (*tls_sink_fn)(void *arg, const uint8_t *p, size_t len);

/* Builds the server context of listener l: certificate chain and key, CA
 * files, CRL, minimum version, ciphers and client-certificate policy.
 * `src` names the configuration file for errors. Returns a context owned by
 * the caller (SSL_CTX_free), or NULL with "FILE:LINE: message" in err. */
SSL_CTX *tls_ctx_build(const struct listener_conf *l, const char *src, char *err, size_t errlen);

/* A session for one accepted connection; it holds its own reference to ctx.
 * Returns NULL when out of memory. */
struct tls_session *tls_session_new(SSL_CTX *ctx);
void tls_session_free(struct tls_session *t);

/* The client context of bridge `name`: trusts cafile (required), presents
 * certfile/keyfile when set (line 0: not set). Returns a context owned by the
 * caller, or NULL with "FILE:LINE: message" in err. */
SSL_CTX *tls_client_ctx_build(const char *name, const struct conf_file *cafile, const struct conf_file *certfile,
			      const struct conf_file *keyfile, const char *src, char *err, size_t errlen);
/* A client session to `host` (its certificate must name it). Feeding it
 * nothing starts the handshake. Returns NULL when out of memory. */
struct tls_session *tls_client_session_new(SSL_CTX *ctx, const char *host);

/* Results of tls_session_feed. */
enum tls_feed {
	TLS_FEED_OK = 0,
	TLS_FEED_HANDSHAKE_DONE = 1, /* the handshake completed in this call */
	TLS_FEED_CLOSED = -1,        /* the peer sent close_notify */
	TLS_FEED_ERROR = -2,         /* handshake or record error: reason in tls_session_error */
};

/* Takes ciphertext from the socket (len may be 0). Decrypted bytes go to
 * sink in chunks of at most scratch_len, decrypted into scratch (the
 * caller's buffer; p may point into it: the ciphertext is copied first).
 * Bytes for the peer (handshake messages, alerts, tickets) are appended to
 * wire. A call that completes the handshake returns TLS_FEED_HANDSHAKE_DONE
 * before reading any data, so the caller can take the client's identity
 * first; it then calls again with len 0 to read what followed. */
int tls_session_feed(struct tls_session *t, const uint8_t *p, size_t len, uint8_t *scratch, size_t scratch_len,
		     tls_sink_fn sink, void *arg, struct buf *wire);
/* Encrypts len bytes of plaintext and appends the records to wire.
 * Returns 0 or -1 (the session is broken). */
int tls_session_encrypt(struct tls_session *t, const uint8_t *p, size_t len, struct buf *wire);
/* Appends a close_notify alert to wire (when the handshake is done). */
void tls_session_shutdown(struct tls_session *t, struct buf *wire);
/* True once the handshake has completed. */
bool tls_session_established(const struct tls_session *t);
/* Why the last feed failed (static text or OpenSSL's reason), never NULL. */
const char *tls_session_error(const struct tls_session *t);
/* The verified client certificate's identity per src (enum identity_source)
 * in out. Returns 0, or -1 when there is no certificate or no such field. */
int tls_session_identity(const struct tls_session *t, uint32_t src, char *out, size_t outlen);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" style description for logs. */
const char *tls_session_describe(const struct tls_session *t, char *out, size_t outlen);

#endif
