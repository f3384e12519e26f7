/*
 * Unit tests of the PKI module (src/core/pki*.c). Each test checks what an
 * operator or device maker would check with the real `openssl` command line
 * on files in a temporary directory: the issued certificate verifies for
 * TLS client auth up to the root, its id is the SHA-256 of its DER, weak or
 * tampered CSRs are refused with a message that says why, key files are
 * private, and so on. Needs the openssl CLI on PATH.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "core/pki.h"

#include "../../common/test_shell.h"

static char dir[64];
static struct pki_ca root_ca;    /* P-256 root */
static struct pki_ca issuing_ca; /* P-256 issuing CA under root_ca */

/* ---- helpers ------------------------------------------------------------- */

/* dir/name in one of a few rotating static buffers. */
static const char *path(const char *name)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, 512, "%s/%s", dir, name);
	return b;
}

/* Runs a shell command in dir and returns its stdout (malloc'ed). */
static char *sh_out(const char *fmt, ...) IOTP_PRINTF(1, 2);
static char *sh_out(const char *fmt, ...)
{
	char cmd[4096], chunk[4096];
	char *out;
	size_t len = 0, got;
	int n;
	FILE *f;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "cd '%s' && ", dir);
	va_start(ap, fmt);
	vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	assert_non_null(f);
	out = malloc(1);
	assert_non_null(out);
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *p = realloc(out, len + got + 1);

		assert_non_null(p);
		out = p;
		memcpy(out + len, chunk, got);
		len += got;
	}
	out[len] = '\0';
	pclose(f);
	return out;
}

static char *slurp(const char *file, size_t *len)
{
	char *data = NULL;
	struct iotp_err err;

	assert_int_equal(util_read_file(file, 1 << 20, &data, len, &err), IOTP_OK);
	return data;
}

static void write_cert(X509 *x, const char *file)
{
	char *pem = NULL;
	struct iotp_err err;

	assert_int_equal(pki_cert_to_pem(x, &pem, &err), IOTP_OK);
	assert_int_equal(util_write_file(file, pem, strlen(pem), 0644, &err), IOTP_OK);
	free(pem);
}

/* Parses the CSR file name (in dir) with pki_csr_parse. */
static iotp_rc parse_csr_file(const char *name, X509_REQ **out, struct iotp_err *err)
{
	size_t len = 0;
	char *data = slurp(path(name), &len);
	iotp_rc rc = pki_csr_parse(data, len, out, err);

	free(data);
	return rc;
}

/* Makes name.key and name.csr with the openssl CLI; newkey is the
 * -newkey argument (e.g. "ec -pkeyopt ec_paramgen_curve:P-256"). */
static void make_csr(const char *name, const char *newkey, const char *subj)
{
	assert_int_equal(test_sh(dir, "openssl req -new -newkey %s -nodes -keyout %s.key -subj '%s' "
	                    "-out %s.csr", newkey, name, subj, name), 0);
}

static X509 *issue_from_file(const struct pki_ca *ca, const char *csr_name, int days)
{
	struct pki_issue_opts opts = {.days = days, .not_before_skew = 300};
	struct iotp_err err;
	X509_REQ *req = NULL;
	X509 *cert = NULL;

	assert_int_equal(parse_csr_file(csr_name, &req, &err), IOTP_OK);
	if (pki_cert_issue(ca, req, &opts, &cert, &err) != IOTP_OK)
		fail_msg("issue: %s", err.msg);
	X509_REQ_free(req);
	return cert;
}

static void make_ca_pair(enum pki_key_type type, const char *prefix, struct pki_ca *root,
                         struct pki_ca *issuing)
{
	struct iotp_err err;
	char cn[64];

	assert_int_equal(pki_key_generate(type, &root->key, &err), IOTP_OK);
	snprintf(cn, sizeof(cn), "%s Root CA", prefix);
	if (pki_ca_create_root(root->key, cn, 3650, &root->cert, &err) != IOTP_OK)
		fail_msg("root: %s", err.msg);
	assert_int_equal(pki_key_generate(type, &issuing->key, &err), IOTP_OK);
	snprintf(cn, sizeof(cn), "%s Issuing CA", prefix);
	if (pki_ca_create_issuing(root, issuing->key, cn, 1825, &issuing->cert, &err) !=
	    IOTP_OK)
		fail_msg("issuing: %s", err.msg);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/iotp-pki-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	make_ca_pair(PKI_KEY_EC_P256, "Test", &root_ca, &issuing_ca);
	write_cert(root_ca.cert, path("root.pem"));
	write_cert(issuing_ca.cert, path("issuing.pem"));
	make_csr("dev", "ec -pkeyopt ec_paramgen_curve:P-256", "/C=DE/O=Acme/CN=device-1");
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	pki_ca_cleanup(&root_ca);
	pki_ca_cleanup(&issuing_ca);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- keys ---------------------------------------------------------------- */

static void test_key_types(void **state)
{
	static const char *names[] = {"ec-p256", "ec-p384", "rsa-2048"};
	struct iotp_err err;
	enum pki_key_type t;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		EVP_PKEY *key = NULL;
		char *pem = NULL;

		assert_int_equal(pki_key_type_parse(names[i], &t, &err), IOTP_OK);
		assert_int_equal(pki_key_generate(t, &key, &err), IOTP_OK);
		assert_int_equal(pki_key_check(key, &err), IOTP_OK);
		assert_int_equal(pki_key_to_pem(key, &pem, &err), IOTP_OK);
		assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
		OPENSSL_cleanse(pem, strlen(pem));
		free(pem);
		EVP_PKEY_free(key);
	}
	assert_int_equal(pki_key_type_parse("dsa-1024", &t, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "ec-p256"));
}

static void test_key_file_mode(void **state)
{
	struct iotp_err err;
	struct stat st;
	EVP_PKEY *key = NULL, *back = NULL;
	char *pub = NULL, *cli = NULL;

	(void)state;
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_int_equal(pki_key_write_file(key, path("k.pem"), &err), IOTP_OK);
	assert_int_equal(stat(path("k.pem"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* The file is a key openssl reads, and the same key. */
	assert_int_equal(pki_pubkey_to_pem(key, &pub, &err), IOTP_OK);
	cli = sh_out("openssl pkey -in k.pem -pubout");
	assert_string_equal(cli, pub);
	assert_int_equal(pki_key_read_file(path("k.pem"), &back, &err), IOTP_OK);
	assert_int_equal(EVP_PKEY_eq(key, back), 1);
	EVP_PKEY_free(back);
	back = NULL;

	assert_int_equal(chmod(path("k.pem"), 0644), 0);
	assert_int_not_equal(pki_key_read_file(path("k.pem"), &back, &err), IOTP_OK);
	assert_null(back);
	assert_non_null(strstr(err.msg, "group or others"));
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_int_equal(pki_key_read_file(path("missing.pem"), &back, &err),
	                 IOTP_ERR_NOT_FOUND);
	free(pub);
	free(cli);
	EVP_PKEY_free(key);
}

/* ---- issuance ------------------------------------------------------------ */

static void test_issue_verifies_with_openssl(void **state)
{
	X509 *cert;
	char *text, *a, *b;
	int64_t nb = 0, na = 0, now = util_now();
	struct iotp_err err;

	(void)state;
	cert = issue_from_file(&issuing_ca, "dev.csr", 30);
	write_cert(cert, path("dev.pem"));
	assert_int_equal(test_sh(dir, "openssl verify -CAfile root.pem -untrusted issuing.pem "
	                    "-purpose sslclient dev.pem"), 0);
	/* Not a server certificate. */
	assert_int_not_equal(test_sh(dir, "openssl verify -CAfile root.pem -untrusted issuing.pem "
	                        "-purpose sslserver dev.pem"), 0);

	text = sh_out("openssl x509 -in dev.pem -noout -text");
	assert_non_null(strstr(text, "Version: 3 (0x2)"));
	assert_non_null(strstr(text, "CA:FALSE"));
	assert_non_null(strstr(text, "Digital Signature"));
	assert_null(strstr(text, "Key Encipherment"));
	assert_non_null(strstr(text, "TLS Web Client Authentication"));
	assert_non_null(strstr(text, "X509v3 Subject Key Identifier"));
	assert_non_null(strstr(text, "X509v3 Authority Key Identifier"));
	assert_non_null(strstr(text, "ecdsa-with-SHA256"));
	free(text);

	/* The certificate carries the device's key. */
	a = sh_out("openssl x509 -in dev.pem -noout -pubkey");
	b = sh_out("openssl pkey -in dev.key -pubout");
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* Subject from the CSR, issuer the issuing CA. */
	a = sh_out("openssl x509 -in dev.pem -noout -subject -issuer -nameopt RFC2253");
	assert_string_equal(a, "subject=CN=device-1,O=Acme,C=DE\n"
	                       "issuer=CN=Test Issuing CA\n");
	free(a);
	/* 16 random bytes, positive. */
	a = sh_out("openssl x509 -in dev.pem -noout -serial");
	assert_int_equal(strlen(a), strlen("serial=") + 32 + 1);
	assert_true(strchr("01234567", a[7]) != NULL);
	free(a);
	/* Validity: backdated by the skew, 30 days. */
	assert_int_equal(pki_cert_validity(cert, &nb, &na, &err), IOTP_OK);
	assert_true(nb >= now - 300 - 5 && nb <= now - 300 + 5);
	assert_true(na >= now + 30 * 86400 - 5 && na <= now + 30 * 86400 + 5);
	a = sh_out("openssl x509 -in dev.pem -noout -checkend %d && echo valid", 29 * 86400);
	assert_string_equal(a, "Certificate will not expire\nvalid\n");
	free(a);
	X509_free(cert);
}

static void test_cert_id_matches_sha256sum(void **state)
{
	X509 *cert;
	char id[PKI_CERT_ID_LEN + 1], *cli;
	struct iotp_err err;

	(void)state;
	cert = issue_from_file(&issuing_ca, "dev.csr", 10);
	write_cert(cert, path("id.pem"));
	assert_int_equal(pki_cert_id(cert, id, &err), IOTP_OK);
	cli = sh_out("openssl x509 -in id.pem -outform DER | sha256sum | cut -d' ' -f1");
	assert_int_equal(strlen(id), 64);
	assert_memory_equal(cli, id, 64);
	free(cli);
	X509_free(cert);
}

static void test_two_certs_differ(void **state)
{
	X509 *a = issue_from_file(&issuing_ca, "dev.csr", 10);
	X509 *b = issue_from_file(&issuing_ca, "dev.csr", 10);
	char ida[65], idb[65], *sa = NULL, *sb = NULL;
	struct iotp_err err;

	(void)state;
	assert_int_equal(pki_cert_id(a, ida, &err), IOTP_OK);
	assert_int_equal(pki_cert_id(b, idb, &err), IOTP_OK);
	assert_string_not_equal(ida, idb);
	assert_int_equal(pki_cert_serial_hex(a, &sa, &err), IOTP_OK);
	assert_int_equal(pki_cert_serial_hex(b, &sb, &err), IOTP_OK);
	assert_string_not_equal(sa, sb);
	free(sa);
	free(sb);
	X509_free(a);
	X509_free(b);
}

static void expect_csr_refused(const char *name, const char *newkey, const char *needle)
{
	struct iotp_err err;
	X509_REQ *req = NULL;

	char file[64];

	make_csr(name, newkey, "/CN=weak");
	snprintf(file, sizeof(file), "%s.csr", name);
	assert_int_equal(parse_csr_file(file, &req, &err), IOTP_ERR_CERT);
	assert_null(req);
	if (strstr(err.msg, needle) == NULL)
		fail_msg("message \"%s\" does not contain \"%s\"", err.msg, needle);
	/* The one-call path refuses it the same way. */
	{
		struct pki_issue_opts opts = {.days = 1};
		struct iotp_err err2;
		X509 *cert = NULL;
		size_t len = 0;
		char *data = slurp(path(file), &len);

		assert_int_equal(pki_csr_issue(&issuing_ca, data, len, &opts, &cert, &err2),
		                 IOTP_ERR_CERT);
		assert_null(cert);
		assert_string_equal(err2.msg, err.msg);
		free(data);
	}
}

static void test_weak_csrs_refused(void **state)
{
	(void)state;
	assert_int_equal(test_sh(dir, "openssl genpkey -genparam -algorithm DSA -pkeyopt "
	                    "dsa_paramgen_bits:1024 -out dsaparam.pem"), 0);
	expect_csr_refused("dsa", "dsa:dsaparam.pem", "DSA keys are not accepted");
	expect_csr_refused("rsa1024", "rsa:1024", "RSA key of 1024 bits is too small");
	expect_csr_refused("ed", "ed25519", "Ed25519 keys are not accepted");
	expect_csr_refused("k1", "ec -pkeyopt ec_paramgen_curve:secp256k1",
	                   "curve secp256k1 is not accepted");
	expect_csr_refused("explicit",
	                   "ec -pkeyopt ec_paramgen_curve:P-256 -pkeyopt "
	                   "ec_param_enc:explicit", "explicit curve parameters");
}

static void test_tampered_csr_refused(void **state)
{
	size_t len = 0;
	char *der;
	unsigned char *p;
	struct iotp_err err;
	X509_REQ *req = NULL;

	(void)state;
	assert_int_equal(test_sh(dir, "openssl req -in dev.csr -outform DER -out dev.csr.der"), 0);
	der = slurp(path("dev.csr.der"), &len);
	/* The DER form parses as well. */
	assert_int_equal(pki_csr_parse(der, len, &req, &err), IOTP_OK);
	X509_REQ_free(req);
	req = NULL;
	/* Change the CN: the self-signature no longer matches. */
	p = NULL;
	for (size_t i = 0; i + 8 <= len && p == NULL; i++)
		if (memcmp(der + i, "device-1", 8) == 0)
			p = (unsigned char *)der + i;
	assert_non_null(p);
	p[7] = '2';
	assert_int_equal(pki_csr_parse(der, len, &req, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "signature does not verify"));
	assert_null(req);
	{
		struct pki_issue_opts opts = {.days = 1};
		X509 *cert = NULL;

		assert_int_equal(pki_csr_issue(&issuing_ca, der, len, &opts, &cert, &err),
		                 IOTP_ERR_CERT);
		assert_non_null(strstr(err.msg, "signature does not verify"));
		assert_null(cert);
	}
	/* Trailing garbage after a valid CSR. */
	p[7] = '1';
	{
		char *longer = malloc(len + 1);

		assert_non_null(longer);
		memcpy(longer, der, len);
		longer[len] = 0;
		assert_int_equal(pki_csr_parse(longer, len + 1, &req, &err), IOTP_ERR_CERT);
		free(longer);
	}
	free(der);
}

static void test_csr_text_and_empty_subject(void **state)
{
	struct iotp_err err;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	struct pki_issue_opts opts = {.days = 1};

	(void)state;
	/* `openssl req -text` output: text before the PEM block. */
	assert_int_equal(test_sh(dir, "openssl req -in dev.csr -text -out devtext.csr"), 0);
	assert_int_equal(parse_csr_file("devtext.csr", &req, &err), IOTP_OK);
	X509_REQ_free(req);
	req = NULL;
	/* A CSR without subject gets a certificate only with a CN override. */
	make_csr("nosubj", "ec -pkeyopt ec_paramgen_curve:P-256", "/");
	assert_int_equal(parse_csr_file("nosubj.csr", &req, &err), IOTP_OK);
	assert_int_equal(pki_cert_issue(&issuing_ca, req, &opts, &cert, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "empty subject"));
	opts.subject_cn = "thing-42";
	assert_int_equal(pki_cert_issue(&issuing_ca, req, &opts, &cert, &err), IOTP_OK);
	write_cert(cert, path("override.pem"));
	{
		char *s = sh_out("openssl x509 -in override.pem -noout -subject -nameopt RFC2253");

		assert_string_equal(s, "subject=CN=thing-42\n");
		free(s);
	}
	/* Options out of range. */
	X509_free(cert);
	cert = NULL;
	opts.days = 0;
	assert_int_equal(pki_cert_issue(&issuing_ca, req, &opts, &cert, &err), IOTP_ERR_INVALID);
	opts.days = 1;
	opts.not_before_skew = -1;
	assert_int_equal(pki_cert_issue(&issuing_ca, req, &opts, &cert, &err), IOTP_ERR_INVALID);
	assert_null(cert);
	X509_REQ_free(req);
}

static void test_ca_key_options(void **state)
{
	static const struct {
		enum pki_key_type type;
		const char *prefix, *sigalg;
	} cases[] = {
		{PKI_KEY_RSA_2048, "RSA", "sha256WithRSAEncryption"},
		{PKI_KEY_EC_P384, "P384", "ecdsa-with-SHA384"},
	};

	(void)state;
	make_csr("rsadev", "rsa:2048", "/CN=rsa-device");
	for (size_t i = 0; i < IOTP_ARRAY_LEN(cases); i++) {
		struct pki_ca r = {0}, s = {0};
		X509 *ec, *rsa;
		char *text;

		make_ca_pair(cases[i].type, cases[i].prefix, &r, &s);
		write_cert(r.cert, path("opt-root.pem"));
		write_cert(s.cert, path("opt-issuing.pem"));
		ec = issue_from_file(&s, "dev.csr", 5);
		rsa = issue_from_file(&s, "rsadev.csr", 5);
		write_cert(ec, path("opt-ec.pem"));
		write_cert(rsa, path("opt-rsa.pem"));
		assert_int_equal(test_sh(dir, "openssl verify -CAfile opt-root.pem -untrusted "
		                    "opt-issuing.pem -purpose sslclient opt-ec.pem opt-rsa.pem"), 0);
		text = sh_out("openssl x509 -in opt-ec.pem -noout -text");
		assert_non_null(strstr(text, cases[i].sigalg));
		free(text);
		/* RSA device keys may also encipher. */
		text = sh_out("openssl x509 -in opt-rsa.pem -noout -text");
		assert_non_null(strstr(text, "Digital Signature, Key Encipherment"));
		free(text);
		X509_free(ec);
		X509_free(rsa);
		pki_ca_cleanup(&r);
		pki_ca_cleanup(&s);
	}
}

/* pki_csr_issue: same-curve (P-256 under the P-256 CA), other curves and
 * RSA (the two-call path) all give certificates openssl accepts, with the
 * device's key and subject. */
static void test_csr_issue_one_call(void **state)
{
	static const struct {
		const char *name, *newkey;
	} cases[] = {
		{"one256", "ec -pkeyopt ec_paramgen_curve:P-256"},
		{"one384", "ec -pkeyopt ec_paramgen_curve:P-384"},
		{"one521", "ec -pkeyopt ec_paramgen_curve:P-521"},
		{"onersa", "rsa:2048"},
	};
	struct pki_issue_opts opts = {.days = 7, .not_before_skew = 60};
	struct iotp_err err;

	(void)state;
	for (size_t i = 0; i < IOTP_ARRAY_LEN(cases); i++) {
		char file[64], *data, *a, *b;
		size_t len = 0;
		X509 *cert = NULL;

		make_csr(cases[i].name, cases[i].newkey, "/O=Acme/CN=one-call");
		snprintf(file, sizeof(file), "%s.csr", cases[i].name);
		data = slurp(path(file), &len);
		if (pki_csr_issue(&issuing_ca, data, len, &opts, &cert, &err) != IOTP_OK)
			fail_msg("%s: %s", cases[i].name, err.msg);
		free(data);
		write_cert(cert, path("one.pem"));
		assert_int_equal(test_sh(dir, "openssl verify -CAfile root.pem -untrusted issuing.pem "
		                    "-purpose sslclient one.pem"), 0);
		a = sh_out("openssl x509 -in one.pem -noout -pubkey -subject -nameopt RFC2253");
		b = sh_out("openssl pkey -in %s.key -pubout && echo subject=CN=one-call,O=Acme",
		           cases[i].name);
		assert_string_equal(a, b);
		free(a);
		free(b);
		a = sh_out("openssl x509 -in one.pem -noout -text");
		assert_non_null(strstr(a, "TLS Web Client Authentication"));
		assert_non_null(strstr(a, i == 3 ? "Digital Signature, Key Encipherment"
		                                 : "Digital Signature\n"));
		free(a);
		X509_free(cert);
	}
	/* DER input and the override work as with pki_cert_issue. */
	{
		char *der;
		size_t len = 0;
		X509 *cert = NULL;
		char cn[64];

		assert_int_equal(test_sh(dir, "openssl req -in one256.csr -outform DER -out one256.der"), 0);
		der = slurp(path("one256.der"), &len);
		opts.subject_cn = "override-1";
		assert_int_equal(pki_csr_issue(&issuing_ca, der, len, &opts, &cert, &err), IOTP_OK);
		assert_int_equal(pki_cert_name_field(cert, 0, "CommonName", cn, sizeof(cn), &err),
		                 IOTP_OK);
		assert_string_equal(cn, "override-1");
		assert_int_equal(pki_cert_name_field(cert, 0, "Organization", cn, sizeof(cn), &err),
		                 IOTP_ERR_NOT_FOUND);
		X509_free(cert);
		cert = NULL;
		opts.days = 0;
		assert_int_equal(pki_csr_issue(&issuing_ca, der, len, &opts, &cert, &err),
		                 IOTP_ERR_INVALID);
		assert_null(cert);
		free(der);
	}
}

static void test_issue_for_key(void **state)
{
	struct pki_issue_opts opts = {.days = 2};
	struct iotp_err err;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char buf[64];

	(void)state;
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_int_equal(pki_cert_issue_for_key(&issuing_ca, key, NULL, &opts, &cert, &err),
	                 IOTP_OK);
	assert_int_equal(pki_cert_name_field(cert, 0, "CommonName", buf, sizeof(buf), &err),
	                 IOTP_OK);
	assert_string_equal(buf, "AWS IoT Certificate");
	assert_int_equal(X509_check_private_key(cert, key), 1);
	write_cert(cert, path("forkey.pem"));
	assert_int_equal(test_sh(dir, "openssl verify -CAfile root.pem -untrusted issuing.pem "
	                    "-purpose sslclient forkey.pem"), 0);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void test_validity_clamped_to_ca(void **state)
{
	struct pki_ca shortca = {0};
	struct pki_issue_opts opts = {.days = 365};
	struct iotp_err err;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	int64_t ca_end = 0, end = 0;

	(void)state;
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &shortca.key, &err), IOTP_OK);
	assert_int_equal(pki_ca_create_issuing(&root_ca, shortca.key, "Short CA", 10,
	                                       &shortca.cert, &err), IOTP_OK);
	assert_int_equal(parse_csr_file("dev.csr", &req, &err), IOTP_OK);
	assert_int_equal(pki_cert_issue(&shortca, req, &opts, &cert, &err), IOTP_OK);
	assert_int_equal(pki_cert_validity(shortca.cert, NULL, &ca_end, &err), IOTP_OK);
	assert_int_equal(pki_cert_validity(cert, NULL, &end, &err), IOTP_OK);
	assert_int_equal(end, ca_end);
	X509_free(cert);
	X509_REQ_free(req);
	pki_ca_cleanup(&shortca);
}

/* ---- CAs and server certificates ----------------------------------------- */

static void test_root_and_issuing_ca(void **state)
{
	char *text;

	(void)state;
	assert_int_equal(test_sh(dir, "openssl verify -CAfile root.pem issuing.pem"), 0);
	text = sh_out("openssl x509 -in issuing.pem -noout -text");
	assert_non_null(strstr(text, "CA:TRUE, pathlen:0"));
	assert_non_null(strstr(text, "Certificate Sign, CRL Sign"));
	assert_non_null(strstr(text, "X509v3 Authority Key Identifier"));
	free(text);
	text = sh_out("openssl x509 -in root.pem -noout -text");
	assert_non_null(strstr(text, "CA:TRUE"));
	assert_non_null(strstr(text, "X509v3 Subject Key Identifier"));
	free(text);
	assert_int_equal(pki_cert_is_ca(root_ca.cert), 1);
	assert_int_equal(pki_cert_is_ca(issuing_ca.cert), 1);
}

static void test_ca_load(void **state)
{
	struct pki_ca ca = {0};
	struct iotp_err err;
	X509 *dev;

	(void)state;
	assert_int_equal(pki_key_write_file(issuing_ca.key, path("issuing.key"), &err), IOTP_OK);
	assert_int_equal(pki_ca_load(path("issuing.pem"), path("issuing.key"), &ca, &err),
	                 IOTP_OK);
	assert_int_equal(X509_cmp(ca.cert, issuing_ca.cert), 0);
	pki_ca_cleanup(&ca);
	/* Root certificate with the issuing key: refused. */
	assert_int_equal(pki_ca_load(path("root.pem"), path("issuing.key"), &ca, &err),
	                 IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "does not match"));
	/* A device certificate is not a CA. */
	dev = issue_from_file(&issuing_ca, "dev.csr", 1);
	write_cert(dev, path("notca.pem"));
	assert_int_equal(pki_ca_load(path("notca.pem"), path("dev.key"), &ca, &err),
	                 IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "not a CA"));
	assert_null(ca.cert);
	X509_free(dev);
}

static void test_server_cert_sans(void **state)
{
	struct iotp_err err;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char *text;

	(void)state;
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_int_equal(pki_server_cert_create(&issuing_ca, key, "127.0.0.1, localhost,::1",
	                                        30, &cert, &err), IOTP_OK);
	write_cert(cert, path("server.pem"));
	text = sh_out("openssl x509 -in server.pem -noout -text");
	assert_non_null(strstr(text, "IP Address:127.0.0.1"));
	assert_non_null(strstr(text, "DNS:localhost"));
	assert_non_null(strstr(text, "IP Address:0:0:0:0:0:0:0:1"));
	assert_null(strstr(text, "DNS:127.0.0.1"));
	assert_non_null(strstr(text, "TLS Web Server Authentication"));
	free(text);
	text = sh_out("openssl x509 -in server.pem -noout -subject -nameopt RFC2253");
	assert_string_equal(text, "subject=CN=localhost\n");
	free(text);
	assert_int_equal(test_sh(dir, "openssl verify -CAfile root.pem -untrusted issuing.pem "
	                    "-purpose sslserver -verify_hostname localhost -verify_ip 127.0.0.1 "
	                    "server.pem"), 0);
	X509_free(cert);
	cert = NULL;
	assert_int_equal(pki_server_cert_create(&issuing_ca, key, "bad name!", 30, &cert, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(pki_server_cert_create(&issuing_ca, key, " , ", 30, &cert, &err),
	                 IOTP_ERR_INVALID);
	assert_null(cert);
	EVP_PKEY_free(key);
}

/* ---- checks -------------------------------------------------------------- */

static X509 *load_pem(const char *name)
{
	size_t len = 0;
	char *pem = slurp(path(name), &len);
	X509 *x = NULL;
	struct iotp_err err;

	if (pki_cert_parse(pem, len, &x, &err) != IOTP_OK)
		fail_msg("parse %s: %s", name, err.msg);
	free(pem);
	return x;
}

static void test_verification_cert(void **state)
{
	static const char code[] =
		"1b2c3d4e5f60718293a4b5c6d7e8f9001b2c3d4e5f60718293a4b5c6d7e8f900";
	struct iotp_err err;
	X509 *ext, *verif, *wrong, *other;

	(void)state;
	/* The AWS documented procedure, with the openssl CLI. */
	assert_int_equal(test_sh(dir, "openssl req -x509 -new -newkey ec -pkeyopt "
	                    "ec_paramgen_curve:P-256 -nodes -keyout ext.key -subj '/CN=Ext CA' "
	                    "-days 30 -addext basicConstraints=critical,CA:TRUE -out ext.pem"),
	                 0);
	assert_int_equal(test_sh(dir, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	                    "-keyout verif.key -subj '/CN=%s' -out verif.csr && openssl x509 "
	                    "-req -in verif.csr -CA ext.pem -CAkey ext.key -CAcreateserial "
	                    "-days 1 -out verif.pem", code), 0);
	assert_int_equal(test_sh(dir, "openssl req -new -key verif.key -subj '/CN=%.63sx' -out w.csr && "
	                    "openssl x509 -req -in w.csr -CA ext.pem -CAkey ext.key "
	                    "-CAcreateserial -days 1 -out wrong.pem", code), 0);
	/* Right CN, signed by a different key (a self-signed look-alike). */
	assert_int_equal(test_sh(dir, "openssl req -x509 -new -key verif.key -subj '/CN=%s' -days 1 "
	                    "-out other.pem", code), 0);
	ext = load_pem("ext.pem");
	verif = load_pem("verif.pem");
	wrong = load_pem("wrong.pem");
	other = load_pem("other.pem");

	assert_int_equal(pki_verification_cert_check(verif, ext, code, &err), IOTP_OK);
	{
		char upper[sizeof(code)];

		for (size_t i = 0; i < sizeof(code); i++)
			upper[i] = (char)(code[i] >= 'a' && code[i] <= 'f' ? code[i] - 32 : code[i]);
		assert_int_equal(pki_verification_cert_check(verif, ext, upper, &err), IOTP_OK);
	}
	assert_int_equal(pki_verification_cert_check(wrong, ext, code, &err), IOTP_ERR_REGCODE);
	assert_non_null(strstr(err.msg, "is not the registration code"));
	assert_int_equal(pki_verification_cert_check(other, ext, code, &err), IOTP_ERR_REGCODE);
	assert_non_null(strstr(err.msg, "not signed by the CA"));
	assert_int_equal(pki_verification_cert_check(verif, ext, "short", &err),
	                 IOTP_ERR_REGCODE);
	/* An external CA made by the openssl CLI is a CA. */
	assert_int_equal(pki_cert_is_ca(ext), 1);
	X509_free(ext);
	X509_free(verif);
	X509_free(wrong);
	X509_free(other);
}

static void test_chains_to(void **state)
{
	struct pki_ca lookalike = {0};
	struct iotp_err err;
	X509 *dev, *fake;

	(void)state;
	dev = issue_from_file(&issuing_ca, "dev.csr", 3);
	assert_int_equal(pki_cert_chains_to(dev, issuing_ca.cert, &err), IOTP_OK);
	assert_int_equal(pki_cert_chains_to(issuing_ca.cert, root_ca.cert, &err), IOTP_OK);
	/* Issued by someone else. */
	assert_int_equal(pki_cert_chains_to(dev, root_ca.cert, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "not issued by this CA"));
	/* Another CA with the very same name but its own key. */
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &lookalike.key, &err), IOTP_OK);
	assert_int_equal(pki_ca_create_root(lookalike.key, "Test Issuing CA", 30,
	                                    &lookalike.cert, &err), IOTP_OK);
	fake = issue_from_file(&lookalike, "dev.csr", 3);
	assert_int_equal(pki_cert_chains_to(fake, issuing_ca.cert, &err), IOTP_ERR_CERT);
	assert_int_equal(pki_cert_chains_to(dev, lookalike.cert, &err), IOTP_ERR_CERT);
	/* A leaf is not a CA. */
	assert_int_equal(pki_cert_chains_to(fake, dev, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "not a CA"));
	assert_int_equal(pki_cert_is_ca(dev), 0);
	X509_free(dev);
	X509_free(fake);
	pki_ca_cleanup(&lookalike);
}

static void test_chains_to_expired(void **state)
{
	struct iotp_err err;
	X509 *dev, *old;
	int64_t now = util_now();

	(void)state;
	/* The same certificate, re-dated to have expired yesterday and signed
	 * again by the issuing CA. */
	dev = issue_from_file(&issuing_ca, "dev.csr", 3);
	old = X509_dup(dev);
	assert_non_null(old);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(old), (time_t)(now - 10 * 86400)));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(old), (time_t)(now - 86400)));
	assert_true(X509_sign(old, issuing_ca.key, EVP_sha256()) > 0);
	assert_int_equal(pki_cert_chains_to(old, issuing_ca.cert, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "expired"));
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(old), (time_t)(now + 86400)));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(old), (time_t)(now + 2 * 86400)));
	assert_true(X509_sign(old, issuing_ca.key, EVP_sha256()) > 0);
	assert_int_equal(pki_cert_chains_to(old, issuing_ca.cert, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "not valid yet"));
	X509_free(dev);
	X509_free(old);
}

static void test_name_fields(void **state)
{
	static const struct {
		const char *field, *want;
	} cases[] = {
		{"CommonName", "pump-7"},     {"Organization", "Acme Inc"},
		{"Country", "DE"},            {"SerialNumber", "SN-42"},
		{"StateName", "Bavaria"},     {"State", "Bavaria"},
		{"Locality", "Munich"},       {"OrganizationalUnit", "Sensors"},
		{"Title", "Dr"},
	};
	struct iotp_err err;
	X509 *cert;
	char buf[64], *s = NULL, *cli;

	(void)state;
	make_csr("named", "ec -pkeyopt ec_paramgen_curve:P-256",
	         "/C=DE/ST=Bavaria/L=Munich/O=Acme Inc/OU=Sensors/CN=pump-7/"
	         "serialNumber=SN-42/title=Dr");
	cert = issue_from_file(&issuing_ca, "named.csr", 1);
	for (size_t i = 0; i < IOTP_ARRAY_LEN(cases); i++) {
		assert_int_equal(pki_cert_name_field(cert, 0, cases[i].field, buf, sizeof(buf),
		                                     &err), IOTP_OK);
		assert_string_equal(buf, cases[i].want);
	}
	assert_int_equal(pki_cert_name_field(cert, 1, "CommonName", buf, sizeof(buf), &err),
	                 IOTP_OK);
	assert_string_equal(buf, "Test Issuing CA");
	assert_int_equal(pki_cert_name_field(cert, 0, "Surname", buf, sizeof(buf), &err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(pki_cert_name_field(cert, 0, "Colour", buf, sizeof(buf), &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(pki_cert_name_field(cert, 0, "CommonName", buf, 4, &err), IOTP_OK);
	assert_string_equal(buf, "pum");

	/* Subject string and serial agree with openssl. */
	write_cert(cert, path("named.pem"));
	assert_int_equal(pki_cert_subject_string(cert, 0, &s, &err), IOTP_OK);
	cli = sh_out("openssl x509 -in named.pem -noout -subject -nameopt RFC2253 | "
	             "sed 's/^subject=//'");
	cli[strcspn(cli, "\n")] = '\0';
	assert_string_equal(s, cli);
	free(s);
	free(cli);
	assert_int_equal(pki_cert_serial_hex(cert, &s, &err), IOTP_OK);
	cli = sh_out("openssl x509 -in named.pem -noout -serial | sed 's/^serial=//' | "
	             "tr A-F a-f");
	cli[strcspn(cli, "\n")] = '\0';
	assert_string_equal(s, cli);
	free(s);
	free(cli);
	X509_free(cert);

	/* UTF-8 survives. */
	assert_int_equal(test_sh(dir, "openssl req -new -utf8 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	                    "-nodes -keyout u.key -subj '/CN=M\xc3\xbcller' -out u.csr"), 0);
	cert = issue_from_file(&issuing_ca, "u.csr", 1);
	assert_int_equal(pki_cert_name_field(cert, 0, "CommonName", buf, sizeof(buf), &err),
	                 IOTP_OK);
	assert_string_equal(buf, "M\xc3\xbcller");
	X509_free(cert);
}

static void test_bundle_and_garbage(void **state)
{
	static const char *garbage[] = {
		"hello",
		"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\nMIIB\n",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"0\x82\x01\x00garbage",
		("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n"
		 "-----END CERTIFICATE-----\n"),
	};
	struct iotp_err err;
	STACK_OF(X509) *sk = NULL;
	X509 *x = NULL;
	X509_REQ *req = NULL;
	size_t len = 0;
	char *pem;

	(void)state;
	assert_int_equal(test_sh(dir, "cat root.pem issuing.pem > bundle.pem && "
	                    "cat root.pem dev.key > withkey.pem"), 0);
	pem = slurp(path("bundle.pem"), &len);
	assert_int_equal(pki_cert_parse_bundle(pem, len, &sk, &err), IOTP_OK);
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), root_ca.cert), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), issuing_ca.cert), 0);
	sk_X509_pop_free(sk, X509_free);
	sk = NULL;
	/* pki_cert_parse takes the first. */
	assert_int_equal(pki_cert_parse(pem, len, &x, &err), IOTP_OK);
	assert_int_equal(X509_cmp(x, root_ca.cert), 0);
	X509_free(x);
	x = NULL;
	free(pem);
	pem = slurp(path("withkey.pem"), &len);
	assert_int_equal(pki_cert_parse_bundle(pem, len, &sk, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "PRIVATE KEY"));
	free(pem);

	for (size_t i = 0; i < IOTP_ARRAY_LEN(garbage); i++) {
		size_t n = strlen(garbage[i]);

		if (i == 4)
			n = 14;
		assert_int_equal(pki_cert_parse(garbage[i], n, &x, &err), IOTP_ERR_CERT);
		assert_int_equal(pki_cert_parse_bundle(garbage[i], n, &sk, &err), IOTP_ERR_CERT);
		assert_int_equal(pki_csr_parse(garbage[i], n, &req, &err), IOTP_ERR_CERT);
	}
	assert_int_equal(pki_cert_parse("", 0, &x, &err), IOTP_ERR_CERT);
	assert_int_equal(pki_csr_parse("", 0, &req, &err), IOTP_ERR_CERT);
	assert_null(x);
	assert_null(sk);
	assert_null(req);
	/* A certificate is not a CSR. */
	pem = slurp(path("root.pem"), &len);
	assert_int_equal(pki_csr_parse(pem, len, &req, &err), IOTP_ERR_CERT);
	assert_non_null(strstr(err.msg, "CERTIFICATE REQUEST"));
	free(pem);
}

static void test_pubkey_fingerprint(void **state)
{
	struct iotp_err err;
	X509 *dev;
	char fp[65], *cli;

	(void)state;
	dev = issue_from_file(&issuing_ca, "dev.csr", 1);
	write_cert(dev, path("fp.pem"));
	X509_free(dev);
	dev = load_pem("fp.pem");
	assert_non_null(pki_cert_pubkey(dev));
	assert_int_equal(pki_pubkey_fingerprint(pki_cert_pubkey(dev), fp, &err), IOTP_OK);
	cli = sh_out("openssl pkey -in dev.key -pubout -outform DER | sha256sum | cut -c1-64");
	assert_memory_equal(cli, fp, 64);
	free(cli);
	X509_free(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_types),
		cmocka_unit_test(test_key_file_mode),
		cmocka_unit_test(test_root_and_issuing_ca),
		cmocka_unit_test(test_issue_verifies_with_openssl),
		cmocka_unit_test(test_cert_id_matches_sha256sum),
		cmocka_unit_test(test_two_certs_differ),
		cmocka_unit_test(test_weak_csrs_refused),
		cmocka_unit_test(test_tampered_csr_refused),
		cmocka_unit_test(test_csr_text_and_empty_subject),
		cmocka_unit_test(test_ca_key_options),
		cmocka_unit_test(test_csr_issue_one_call),
		cmocka_unit_test(test_issue_for_key),
		cmocka_unit_test(test_validity_clamped_to_ca),
		cmocka_unit_test(test_ca_load),
		cmocka_unit_test(test_server_cert_sans),
		cmocka_unit_test(test_verification_cert),
		cmocka_unit_test(test_chains_to),
		cmocka_unit_test(test_chains_to_expired),
		cmocka_unit_test(test_name_fields),
		cmocka_unit_test(test_bundle_and_garbage),
		cmocka_unit_test(test_pubkey_fingerprint),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
