/* TLS contexts and sessions over memory BIOs (see tls.h). */
#include "tls.h"
#include "../base/log.h"
#include <errno.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tls_session {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl: ciphertext in, ciphertext out */
	const char *err;  /* static text */
	bool established;
};

/* The reason of the newest OpenSSL error of this thread, or fallback. */
static const char *ssl_reason(const char *fallback)
{
	unsigned long e, last = 0;
	while ((e = ERR_get_error()))
		last = e;
	const char *r = last ? ERR_reason_error_string(last) : NULL;
	return r ? r : fallback;
}

/* "FILE:LINE: listener PORT: what PATH: why" */
static SSL_CTX *ctx_fail(SSL_CTX *ctx, const struct listener_conf *l, const char *src, uint32_t line,
			 const char *what, const char *path, const char *why, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s:%u: listener %u: %s%s%s: %s", src, line ? line : l->line, l->port, what,
		 path ? " " : "", path ? path : "", why);
	SSL_CTX_free(ctx);
	return NULL;
}

static bool readable(const struct conf_file *f, bool dir)
{
	return !f->line || access(f->path, dir ? (R_OK | X_OK) : R_OK) == 0;
}

SSL_CTX *tls_ctx_build(const struct listener_conf *l, const char *src, char *err, size_t errlen)
{
	const struct { const struct conf_file *f; const char *name; bool dir; } files[] = {
		{ &l->certfile, "certfile", false }, { &l->keyfile, "keyfile", false },
		{ &l->cafile, "cafile", false },     { &l->capath, "capath", true },
		{ &l->crlfile, "crlfile", false },
	};
	if (!src || !*src)
		src = "(configuration)";
	ERR_clear_error();
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (!readable(files[i].f, files[i].dir))
			return ctx_fail(NULL, l, src, files[i].f->line, files[i].name, files[i].f->path,
					strerror(errno), err, errlen);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return ctx_fail(NULL, l, src, 0, "TLS context", NULL, ssl_reason("out of memory"), err, errlen);
	SSL_CTX_set_min_proto_version(ctx, l->tls_version == TLS_MIN_13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle connections give their record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ferromq", 7);
	if (SSL_CTX_use_certificate_chain_file(ctx, l->certfile.path) != 1)
		return ctx_fail(ctx, l, src, l->certfile.line, "certfile", l->certfile.path,
				ssl_reason("not a PEM certificate"), err, errlen);
	if (SSL_CTX_use_PrivateKey_file(ctx, l->keyfile.path, SSL_FILETYPE_PEM) != 1)
		return ctx_fail(ctx, l, src, l->keyfile.line, "keyfile", l->keyfile.path,
				ssl_reason("not a PEM private key"), err, errlen);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ctx_fail(ctx, l, src, l->keyfile.line, "keyfile", l->keyfile.path,
				"does not match certfile", err, errlen);
	if (l->ciphers[0] && SSL_CTX_set_cipher_list(ctx, l->ciphers) != 1)
		return ctx_fail(ctx, l, src, 0, "ciphers", l->ciphers, ssl_reason("no usable cipher"), err, errlen);
	if (l->ciphers_tls13[0] && SSL_CTX_set_ciphersuites(ctx, l->ciphers_tls13) != 1)
		return ctx_fail(ctx, l, src, 0, "ciphers_tls1.3", l->ciphers_tls13,
				ssl_reason("no usable cipher suite"), err, errlen);
	int mode = SSL_VERIFY_NONE;
	if (l->cafile.line || l->capath.line) {
		const char *ca = l->cafile.line ? l->cafile.path : NULL;
		const char *cap = l->capath.line ? l->capath.path : NULL;
		if (SSL_CTX_load_verify_locations(ctx, ca, cap) != 1)
			return ctx_fail(ctx, l, src, ca ? l->cafile.line : l->capath.line, ca ? "cafile" : "capath",
					ca ? ca : cap, ssl_reason("no CA certificate"), err, errlen);
		if (ca) {
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
		mode = SSL_VERIFY_PEER | (l->require_certificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
	}
	SSL_CTX_set_verify(ctx, mode, NULL);
	if (l->crlfile.line) {
		X509_STORE *st = SSL_CTX_get_cert_store(ctx);
		X509_LOOKUP *lk = X509_STORE_add_lookup(st, X509_LOOKUP_file());
		if (!lk || X509_load_crl_file(lk, l->crlfile.path, X509_FILETYPE_PEM) <= 0)
			return ctx_fail(ctx, l, src, l->crlfile.line, "crlfile", l->crlfile.path,
					ssl_reason("not a PEM CRL"), err, errlen);
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	}
	return ctx;
}

struct tls_session *tls_session_new(SSL_CTX *ctx)
{
	struct tls_session *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		SSL_free(t->ssl);
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		free(t);
		return NULL;
	}
	/* An empty read BIO means "wait for more", not end of file. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* ssl owns both from here */
	SSL_set_accept_state(t->ssl);
	return t;
}

/* "FILE:LINE: bridge NAME: what PATH: why" */
static SSL_CTX *client_fail(SSL_CTX *ctx, const char *src, const char *name, const struct conf_file *f,
			    const char *what, const char *why, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s:%u: bridge %s: %s %s: %s", src, f->line, name, what, f->path, why);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx_build(const char *name, const struct conf_file *cafile, const struct conf_file *certfile,
			      const struct conf_file *keyfile, const char *src, char *err, size_t errlen)
{
	if (!src || !*src)
		src = "(configuration)";
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "bridge %s: TLS context: %s", name, ssl_reason("out of memory"));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_load_verify_locations(ctx, cafile->path, NULL) != 1)
		return client_fail(ctx, src, name, cafile, "bridge_cafile", ssl_reason("no CA certificate"), err,
				   errlen);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (certfile->line && SSL_CTX_use_certificate_chain_file(ctx, certfile->path) != 1)
		return client_fail(ctx, src, name, certfile, "bridge_certfile", ssl_reason("not a PEM certificate"),
				   err, errlen);
	if (keyfile->line && SSL_CTX_use_PrivateKey_file(ctx, keyfile->path, SSL_FILETYPE_PEM) != 1)
		return client_fail(ctx, src, name, keyfile, "bridge_keyfile", ssl_reason("not a PEM private key"),
				   err, errlen);
	if (certfile->line && SSL_CTX_check_private_key(ctx) != 1)
		return client_fail(ctx, src, name, keyfile, "bridge_keyfile", "does not match bridge_certfile", err,
				   errlen);
	return ctx;
}

struct tls_session *tls_client_session_new(SSL_CTX *ctx, const char *host)
{
	struct tls_session *t = tls_session_new(ctx);
	if (!t)
		return NULL;
	SSL_set_connect_state(t->ssl);
	/* The server's certificate must name the host we asked for: its IP
	 * address, or its DNS name (sent as SNI too). */
	X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
	bool ok = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ||
		  (SSL_set_tlsext_host_name(t->ssl, host) == 1 && SSL_set1_host(t->ssl, host) == 1);
	if (!ok) {
		tls_session_free(t);
		return NULL;
	}
	return t;
}

void tls_session_free(struct tls_session *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

/* A memory BIO never gives memory back: one that grew beyond this during a
 * burst is replaced by a fresh one once empty, so idle connections stay small. */
#define TLS_BIO_KEEP (20 * 1024)
/* Plaintext encrypted per SSL_write: one record, so the write BIO stays small. */
#define TLS_WRITE_SLICE (16 * 1024)

static void shrink_bios(struct tls_session *t)
{
	BUF_MEM *m = NULL;
	BIO_get_mem_ptr(t->rbio, &m);
	if (m && m->max > TLS_BIO_KEEP && !BIO_ctrl_pending(t->rbio)) {
		BIO *fresh = BIO_new(BIO_s_mem());
		if (fresh) {
			BIO_set_mem_eof_return(fresh, -1);
			SSL_set0_rbio(t->ssl, fresh); /* frees the old one */
			t->rbio = fresh;
		}
	}
	m = NULL;
	BIO_get_mem_ptr(t->wbio, &m);
	if (m && m->max > TLS_BIO_KEEP && !BIO_ctrl_pending(t->wbio)) {
		BIO *fresh = BIO_new(BIO_s_mem());
		if (fresh) {
			SSL_set0_wbio(t->ssl, fresh);
			t->wbio = fresh;
		}
	}
}

/* Moves what OpenSSL wrote for the peer into wire. */
static int drain(struct tls_session *t, struct buf *wire)
{
	size_t n = BIO_ctrl_pending(t->wbio);
	if (!n)
		return 0;
	if (buf_reserve(wire, n))
		return -1;
	int got = BIO_read(t->wbio, wire->p + wire->len, (int)n);
	if (got > 0)
		wire->len += (uint32_t)got;
	return 0;
}

/* Records why the session failed: the certificate check, or OpenSSL's reason. */
static void set_error(struct tls_session *t, int ssl_err)
{
	long v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK)
		t->err = X509_verify_cert_error_string(v);
	else if (ssl_err == SSL_ERROR_SYSCALL)
		t->err = ssl_reason("unexpected end of stream");
	else
		t->err = ssl_reason("protocol error");
}

int tls_session_feed(struct tls_session *t, const uint8_t *p, size_t len, uint8_t *scratch, size_t scratch_len,
		     tls_sink_fn sink, void *arg, struct buf *wire)
{
	ERR_clear_error();
	if (len && BIO_write(t->rbio, p, (int)len) != (int)len) {
		t->err = "out of memory";
		return TLS_FEED_ERROR;
	}
	if (!t->established) {
		int r = SSL_do_handshake(t->ssl);
		if (r != 1) {
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return drain(t, wire) ? TLS_FEED_ERROR : TLS_FEED_OK;
			set_error(t, e);
			drain(t, wire); /* the alert, if any */
			return TLS_FEED_ERROR;
		}
		t->established = true;
		return drain(t, wire) ? TLS_FEED_ERROR : TLS_FEED_HANDSHAKE_DONE;
	}
	int rc = TLS_FEED_OK;
	size_t got = 0;
	for (;;) {
		int n = SSL_read(t->ssl, scratch + got, (int)(scratch_len - got));
		if (n > 0) {
			got += (size_t)n;
			if (got < scratch_len)
				continue;
		}
		/* A full scratch buffer, or nothing more for now: hand it over. */
		if (got) {
			int stop = sink(arg, scratch, got);
			got = 0;
			if (stop)
				break;
			if (n > 0)
				continue;
		}
		int e = SSL_get_error(t->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) {
			rc = TLS_FEED_CLOSED;
		} else {
			set_error(t, e);
			rc = TLS_FEED_ERROR;
		}
		break;
	}
	if (drain(t, wire))
		return TLS_FEED_ERROR;
	shrink_bios(t);
	return rc;
}

int tls_session_encrypt(struct tls_session *t, const uint8_t *p, size_t len, struct buf *wire)
{
	ERR_clear_error();
	while (len) {
		int n = SSL_write(t->ssl, p, len > TLS_WRITE_SLICE ? TLS_WRITE_SLICE : (int)len);
		if (n <= 0) {
			set_error(t, SSL_get_error(t->ssl, n));
			return -1;
		}
		p += n;
		len -= (size_t)n;
		/* Keep the memory BIO small: move each record out. */
		if (drain(t, wire))
			return -1;
	}
	shrink_bios(t);
	return 0;
}

void tls_session_shutdown(struct tls_session *t, struct buf *wire)
{
	if (!t->established)
		return;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	ERR_clear_error();
	drain(t, wire);
}

bool tls_session_established(const struct tls_session *t) { return t->established; }

const char *tls_session_error(const struct tls_session *t) { return t->err ? t->err : "unknown error"; }

/* Copies an ASN.1 string as UTF-8; refuses embedded NULs. */
static int copy_asn1(const ASN1_STRING *s, char *out, size_t outlen)
{
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, s);
	if (n <= 0)
		return -1;
	int rc = -1;
	if ((size_t)n < outlen && !memchr(u, 0, (size_t)n)) {
		memcpy(out, u, (size_t)n);
		out[n] = 0;
		rc = 0;
	}
	OPENSSL_free(u);
	return rc;
}

int tls_session_identity(const struct tls_session *t, uint32_t src, char *out, size_t outlen)
{
	X509 *cert = SSL_get0_peer_certificate(t->ssl);
	if (!cert || SSL_get_verify_result(t->ssl) != X509_V_OK)
		return -1;
	if (src == IDENTITY_CN) {
		const X509_NAME *name = X509_get_subject_name(cert);
		int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
		if (i < 0)
			return -1;
		return copy_asn1(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)), out, outlen);
	}
	int type = src == IDENTITY_SAN_DNS ? GEN_DNS : src == IDENTITY_SAN_URI ? GEN_URI : GEN_EMAIL;
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int rc = -1;
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && rc; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type == type)
			rc = copy_asn1(g->d.ia5, out, outlen);
	}
	GENERAL_NAMES_free(names);
	return rc;
}

const char *tls_session_describe(const struct tls_session *t, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	return out;
}
