/*
 * PKI, part 2: reading certificates (see pki.h) and the PEM decoder that
 * the CSR code (pki_csr.c) shares. Certificates arrive from devices,
 * operators and external CAs, so every parser here is bounded, never trusts
 * a length, and turns anything malformed into IOTP_ERR_CERT with a message
 * (never a crash): the fuzz targets fuzz_cert and fuzz_csr drive it.
 *
 * PEM is decoded here rather than through PEM_read_bio: the input is a
 * (pointer, length) pair that need not be NUL-terminated, labels are checked
 * exactly, and headers (encrypted PEM) are refused instead of interpreted.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "core/pki.h"
#include "core/pki_int.h"

#define CERT_MAX (64 * 1024)
#define BUNDLE_MAX (1024 * 1024)
#define BUNDLE_CERTS_MAX 256
#define LABEL_MAX 64

/* ---- PEM ----------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Strict base64 of a PEM body: whitespace anywhere, '=' only at the end,
 * a multiple of four symbols. Returns the decoded length or -1. out holds at
 * least 3 * n / 4 + 3 bytes. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
	unsigned long acc = 0;
	size_t syms = 0, pad = 0, o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (is_space(c))
			continue;
		if (c == '=') {
			if (++pad > 2)
				return -1;
			syms++;
			acc <<= 6;
		} else {
			if (pad > 0 || (v = b64_value(c)) < 0)
				return -1;
			syms++;
			acc = (acc << 6) | (unsigned long)v;
		}
		if (syms % 4 == 0) {
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (syms % 4 != 0 || o < pad)
		return -1;
	return (long)(o - pad);
}

static const char *find(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle);

	if (m > n)
		return NULL;
	for (size_t i = 0; i + m <= n; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

/* The next PEM block at or after *pos. On IOTP_OK, *der is NULL when there
 * is no further block; otherwise it is malloc'ed (caller frees), label holds
 * the block's label and *pos moves past its END line. */
static iotp_rc pem_next(const char *data, size_t len, size_t *pos, char label[LABEL_MAX],
                        unsigned char **der, size_t *der_len, const char *what,
                        struct iotp_err *err)
{
	static const char begin[] = "-----BEGIN ";
	char end_marker[LABEL_MAX + 16];
	const char *p = data + *pos, *lim = data + len, *b, *body, *e;
	unsigned char *buf;
	size_t l = 0;
	long got;

	*der = NULL;
	b = find(p, (size_t)(lim - p), begin);
	if (b == NULL)
		return IOTP_OK;
	p = b + sizeof(begin) - 1;
	while (p + l < lim && l < LABEL_MAX && p[l] != '-' && p[l] != '\n' &&
	       (unsigned char)p[l] >= 0x20 && (unsigned char)p[l] < 0x7f)
		l++;
	if (l == 0 || l >= LABEL_MAX || (size_t)(lim - p) < l + 5 ||
	    memcmp(p + l, "-----", 5) != 0)
		return iotp_err_set(err, IOTP_ERR_CERT, "%s: malformed PEM BEGIN line", what);
	memcpy(label, p, l);
	label[l] = '\0';
	body = p + l + 5;
	snprintf(end_marker, sizeof(end_marker), "-----END %s-----", label);
	e = find(body, (size_t)(lim - body), end_marker);
	if (e == NULL)
		return iotp_err_set(err, IOTP_ERR_CERT, "%s: PEM block %s has no END line", what,
		                    label);
	buf = malloc((size_t)(e - body) / 4 * 3 + 4);
	if (buf == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	got = b64_decode(body, (size_t)(e - body), buf);
	if (got <= 0) {
		free(buf);
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "%s: PEM block %s is not valid base64 (encrypted or with "
		                    "headers?)", what, label);
	}
	*der = buf;
	*der_len = (size_t)got;
	*pos = (size_t)(e - data) + strlen(end_marker);
	return IOTP_OK;
}

/* DER starts with a SEQUENCE tag; anything else is taken for PEM (which may
 * be preceded by text, as `openssl x509 -text` writes it). */
static int looks_der(const void *data, size_t len)
{
	return len > 0 && ((const unsigned char *)data)[0] == 0x30;
}

iotp_rc pki_input_der(const void *data, size_t len, const char *const *labels,
                      const char *what, unsigned char **alloc, const unsigned char **der,
                      size_t *der_len, struct iotp_err *err)
{
	char label[LABEL_MAX];
	size_t pos = 0;
	iotp_rc rc;

	*alloc = NULL;
	if (looks_der(data, len)) {
		*der = data;
		*der_len = len;
		return IOTP_OK;
	}
	for (;;) {
		unsigned char *d = NULL;
		size_t n = 0;

		if ((rc = pem_next(data, len, &pos, label, &d, &n, what, err)) != IOTP_OK)
			return rc;
		if (d == NULL)
			return iotp_err_set(err, IOTP_ERR_CERT, "%s: no PEM %s block found", what,
			                    labels[0]);
		for (size_t i = 0; labels[i] != NULL; i++) {
			if (strcmp(label, labels[i]) == 0) {
				*alloc = d;
				*der = d;
				*der_len = n;
				return IOTP_OK;
			}
		}
		free(d);
	}
}

/* ---- certificates -------------------------------------------------------- */

iotp_rc pki_cert_check_decoded(X509 *x, struct iotp_err *err)
{
	if (x == NULL)
		return iotp_err_set(err, IOTP_ERR_CERT, "not a valid X.509 certificate");
	if (X509_get0_pubkey(x) == NULL) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "the certificate's public key is malformed or of an "
		                    "unsupported type");
	}
	/* Caches the extensions; EXFLAG_INVALID marks broken ones. */
	if ((X509_get_extension_flags(x) & EXFLAG_INVALID) != 0) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "the certificate has malformed or duplicate extensions");
	}
	return IOTP_OK;
}

/* d2i of exactly der_len bytes into a certificate whose key decodes. */
static iotp_rc cert_from_der(const unsigned char *der, size_t der_len, X509 **out,
                             struct iotp_err *err)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)der_len);
	iotp_rc rc;

	if (x == NULL || (size_t)(p - der) != der_len) {
		X509_free(x);
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    x == NULL ? "not a valid X.509 certificate"
		                              : "the certificate has trailing data");
	}
	if ((rc = pki_cert_check_decoded(x, err)) != IOTP_OK) {
		X509_free(x);
		return rc;
	}
	*out = x;
	return IOTP_OK;
}

iotp_rc pki_cert_parse(const void *data, size_t len, X509 **out, struct iotp_err *err)
{
	static const char *const labels[] = {"CERTIFICATE", NULL};
	unsigned char *alloc = NULL;
	const unsigned char *der = NULL;
	size_t der_len = 0;
	iotp_rc rc;

	if (data == NULL || len == 0)
		return iotp_err_set(err, IOTP_ERR_CERT, "the certificate is empty");
	if (len > (looks_der(data, len) ? CERT_MAX : BUNDLE_MAX))
		return iotp_err_set(err, IOTP_ERR_CERT, "the certificate is larger than %d bytes",
		                    looks_der(data, len) ? CERT_MAX : BUNDLE_MAX);
	if ((rc = pki_input_der(data, len, labels, "certificate", &alloc, &der, &der_len, err)) !=
	    IOTP_OK)
		return rc;
	rc = cert_from_der(der, der_len, out, err);
	free(alloc);
	return rc;
}

iotp_rc pki_cert_parse_bundle(const void *data, size_t len, STACK_OF(X509) **out,
                              struct iotp_err *err)
{
	STACK_OF(X509) *sk = NULL;
	unsigned char *der = NULL;
	size_t pos = 0, der_len = 0;
	char label[LABEL_MAX];
	X509 *x = NULL;
	iotp_rc rc = IOTP_OK;

	if (data == NULL || len == 0) {
		rc = iotp_err_set(err, IOTP_ERR_CERT, "the certificate bundle is empty");
		goto out;
	}
	if (len > BUNDLE_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_CERT, "the bundle is larger than %d bytes",
		                  BUNDLE_MAX);
		goto out;
	}
	if ((sk = sk_X509_new_null()) == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (looks_der(data, len)) {
		if ((rc = cert_from_der(data, len, &x, err)) != IOTP_OK)
			goto out;
		if (sk_X509_push(sk, x) <= 0) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			goto out;
		}
		x = NULL;
	}
	while (!looks_der(data, len)) {
		if ((rc = pem_next(data, len, &pos, label, &der, &der_len, "bundle", err)) !=
		    IOTP_OK)
			goto out;
		if (der == NULL)
			break;
		/* A key pasted into a bundle of public certificates would end up
		 * published: refuse rather than skip. */
		if (strcmp(label, "CERTIFICATE") != 0) {
			rc = iotp_err_set(err, IOTP_ERR_CERT,
			                  "the bundle holds a PEM %s block: only CERTIFICATE blocks "
			                  "are allowed", label);
			goto out;
		}
		if (sk_X509_num(sk) >= BUNDLE_CERTS_MAX) {
			rc = iotp_err_set(err, IOTP_ERR_CERT, "the bundle holds more than %d "
			                  "certificates", BUNDLE_CERTS_MAX);
			goto out;
		}
		if ((rc = cert_from_der(der, der_len, &x, err)) != IOTP_OK)
			goto out;
		if (sk_X509_push(sk, x) <= 0) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			goto out;
		}
		x = NULL;
		free(der);
		der = NULL;
	}
	if (sk_X509_num(sk) == 0) {
		rc = iotp_err_set(err, IOTP_ERR_CERT, "no PEM CERTIFICATE block found");
		goto out;
	}
	*out = sk;
	sk = NULL;
out:
	X509_free(x);
	free(der);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

iotp_rc pki_cert_to_pem(X509 *cert, char **out, struct iotp_err *err)
{
	static const char head[] = "-----BEGIN CERTIFICATE-----\n";
	static const char tail[] = "-----END CERTIFICATE-----\n";
	unsigned char *der = NULL;
	char *pem, *w;
	int n = cert != NULL ? i2d_X509(cert, &der) : -1;
	size_t lines;

	if (n <= 0)
		return iotp_err_ssl(err, IOTP_ERR_CERT, "cannot encode the certificate");
	/* 64 base64 characters (48 bytes) per line, as RFC 7468 asks. */
	lines = ((size_t)n + 47) / 48;
	pem = malloc(sizeof(head) + lines * 65 + sizeof(tail) + 1);
	if (pem == NULL) {
		OPENSSL_free(der);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	}
	memcpy(pem, head, sizeof(head) - 1);
	w = pem + sizeof(head) - 1;
	for (size_t off = 0; off < (size_t)n; off += 48) {
		size_t chunk = (size_t)n - off < 48 ? (size_t)n - off : 48;

		w += EVP_EncodeBlock((unsigned char *)w, der + off, (int)chunk);
		*w++ = '\n';
	}
	memcpy(w, tail, sizeof(tail)); /* with its NUL */
	OPENSSL_free(der);
	*out = pem;
	return IOTP_OK;
}

iotp_rc pki_sha256_hex(const unsigned char *p, size_t n, char out[65], struct iotp_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "SHA-256");
	util_hex(md, 32, out);
	return IOTP_OK;
}

iotp_rc pki_cert_id(X509 *cert, char out[PKI_CERT_ID_LEN + 1], struct iotp_err *err)
{
	unsigned char *der = NULL;
	int n = cert != NULL ? i2d_X509(cert, &der) : -1;
	iotp_rc rc;

	if (n <= 0)
		return iotp_err_ssl(err, IOTP_ERR_CERT, "cannot encode the certificate");
	rc = pki_sha256_hex(der, (size_t)n, out, err);
	OPENSSL_free(der);
	return rc;
}

iotp_rc pki_time_epoch(const ASN1_TIME *t, int64_t *out, struct iotp_err *err)
{
	struct tm tm;
	int64_t y, m, d, era, yoe, doy, doe;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT, "the certificate has an invalid time");
	}
	y = (int64_t)tm.tm_year + 1900;
	m = tm.tm_mon + 1;
	d = tm.tm_mday;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	*out = (era * 146097 + doe - 719468) * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 +
	       tm.tm_sec;
	return IOTP_OK;
}

iotp_rc pki_cert_validity(X509 *cert, int64_t *not_before, int64_t *not_after,
                          struct iotp_err *err)
{
	int64_t nb, na;
	iotp_rc rc;

	if (cert == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no certificate");
	if ((rc = pki_time_epoch(X509_get0_notBefore(cert), &nb, err)) != IOTP_OK ||
	    (rc = pki_time_epoch(X509_get0_notAfter(cert), &na, err)) != IOTP_OK)
		return rc;
	if (not_before != NULL)
		*not_before = nb;
	if (not_after != NULL)
		*not_after = na;
	return IOTP_OK;
}

iotp_rc pki_cert_serial_hex(X509 *cert, char **out, struct iotp_err *err)
{
	return pki_serial_hex(cert != NULL ? X509_get0_serialNumber(cert) : NULL, out, err);
}

iotp_rc pki_serial_hex(const ASN1_INTEGER *serial, char **out, struct iotp_err *err)
{
	const unsigned char *p;
	size_t n;
	int neg;
	char *s;

	if (serial == NULL)
		return iotp_err_set(err, IOTP_ERR_CERT, "the certificate has no serial number");
	p = ASN1_STRING_get0_data(serial);
	n = (size_t)ASN1_STRING_length(serial);
	neg = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER;
	while (n > 1 && p[0] == 0) {
		p++;
		n--;
	}
	s = malloc(2 * (n > 0 ? n : 1) + 2);
	if (s == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	s[0] = '-';
	if (n == 0)
		memcpy(s + neg, "00", 3);
	else
		util_hex(p, n, s + neg);
	*out = s;
	return IOTP_OK;
}

iotp_rc pki_cert_subject_string(X509 *cert, int issuer, char **out, struct iotp_err *err)
{
	if (cert == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no certificate");
	return pki_name_string(issuer ? X509_get_issuer_name(cert) : X509_get_subject_name(cert),
	                       out, err);
}

iotp_rc pki_name_string(const X509_NAME *name, char **out, struct iotp_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *s;
	long n;

	/* RFC 2253 with UTF-8 left as is (not \XX-escaped). */
	if (bio == NULL || name == NULL ||
	    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
		BIO_free(bio);
		return iotp_err_ssl(err, IOTP_ERR_CERT, "cannot print the name");
	}
	n = BIO_get_mem_data(bio, &data);
	if (n < 0 || data == NULL)
		n = 0;
	s = malloc((size_t)n + 1);
	if (s == NULL) {
		BIO_free(bio);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	}
	if (n > 0)
		memcpy(s, data, (size_t)n);
	s[n] = '\0';
	BIO_free(bio);
	*out = s;
	return IOTP_OK;
}

iotp_rc pki_cert_name_field(X509 *cert, int issuer, const char *field, char *out,
                            size_t size, struct iotp_err *err)
{
	static const struct {
		const char *name;
		int nid;
	} fields[] = {
		{"CommonName", NID_commonName},
		{"Country", NID_countryName},
		{"Organization", NID_organizationName},
		{"OrganizationalUnit", NID_organizationalUnitName},
		{"DistinguishedNameQualifier", NID_dnQualifier},
		{"StateName", NID_stateOrProvinceName},
		{"State", NID_stateOrProvinceName},
		{"Locality", NID_localityName},
		{"SerialNumber", NID_serialNumber},
		{"Title", NID_title},
		{"Surname", NID_surname},
		{"GivenName", NID_givenName},
		{"Initials", NID_initials},
		{"Pseudonym", NID_pseudonym},
		{"GenerationQualifier", NID_generationQualifier},
	};
	const X509_NAME *name;
	const X509_NAME_ENTRY *entry;
	unsigned char *utf8 = NULL;
	int nid = NID_undef, idx, n;

	if (cert == NULL || field == NULL || out == NULL || size == 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no certificate, field or buffer");
	for (size_t i = 0; i < IOTP_ARRAY_LEN(fields); i++) {
		if (strcasecmp(field, fields[i].name) == 0) {
			nid = fields[i].nid;
			break;
		}
	}
	if (nid == NID_undef)
		return iotp_err_set(err, IOTP_ERR_INVALID, "unknown certificate field \"%s\"",
		                    field);
	name = issuer ? X509_get_issuer_name(cert) : X509_get_subject_name(cert);
	idx = X509_NAME_get_index_by_NID(name, nid, -1);
	if (idx < 0)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "the %s has no %s",
		                    issuer ? "issuer" : "subject", field);
	entry = X509_NAME_get_entry(name, idx);
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
	if (n < 0)
		return iotp_err_ssl(err, IOTP_ERR_CERT, "the %s's %s is not a valid string",
		                    issuer ? "issuer" : "subject", field);
	if ((size_t)n >= size)
		n = (int)size - 1;
	memcpy(out, utf8, (size_t)n);
	out[n] = '\0';
	OPENSSL_free(utf8);
	return IOTP_OK;
}

int pki_cert_is_ca(X509 *cert)
{
	uint32_t flags;

	if (cert == NULL)
		return 0;
	flags = X509_get_extension_flags(cert);
	return (flags & EXFLAG_INVALID) == 0 && (flags & EXFLAG_CA) != 0;
}

/* notBefore <= now <= notAfter, naming the failing bound. */
static iotp_rc check_times(X509 *x, const char *what, iotp_rc code, struct iotp_err *err)
{
	if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0)
		return iotp_err_set(err, code, "the %s is not valid yet", what);
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
		return iotp_err_set(err, code, "the %s has expired", what);
	return IOTP_OK;
}

iotp_rc pki_cert_chains_to(X509 *cert, X509 *ca, struct iotp_err *err)
{
	EVP_PKEY *ca_key;
	int v;
	iotp_rc rc;

	if (cert == NULL || ca == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no certificate or CA");
	if (!pki_cert_is_ca(ca))
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "the CA certificate is not a CA (basicConstraints CA:TRUE "
		                    "missing)");
	/* Issuer name = CA subject, AKI matches the CA's key, CA keyUsage allows
	 * keyCertSign. */
	v = X509_check_issued(ca, cert);
	if (v != X509_V_OK) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT, "the certificate was not issued by this "
		                    "CA: %s", X509_verify_cert_error_string(v));
	}
	ca_key = X509_get0_pubkey(ca);
	if (ca_key == NULL || X509_verify(cert, ca_key) != 1) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "the certificate's signature does not verify with the CA's key");
	}
	/* A CA with pathlen 0 may sign end entities only. */
	if (pki_cert_is_ca(cert) && X509_get_pathlen(ca) == 0 &&
	    X509_name_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) != 0)
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "the CA's pathLenConstraint 0 forbids a CA certificate below it");
	if ((rc = check_times(ca, "CA certificate", IOTP_ERR_CERT, err)) != IOTP_OK)
		return rc;
	return check_times(cert, "certificate", IOTP_ERR_CERT, err);
}

iotp_rc pki_verification_cert_check(X509 *verif, X509 *ca, const char *registration_code,
                                    struct iotp_err *err)
{
	char cn[256], a[256], b[256];
	size_t n, m;
	EVP_PKEY *ca_key;
	struct iotp_err ferr;

	if (verif == NULL || ca == NULL || registration_code == NULL)
		return iotp_err_set(err, IOTP_ERR_REGCODE, "no verification certificate");
	if (pki_cert_name_field(verif, 0, "CommonName", cn, sizeof(cn), &ferr) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_REGCODE,
		                    "the verification certificate has no common name: its CN must "
		                    "be the registration code");
	n = strlen(cn);
	m = strlen(registration_code);
	/* Case-insensitive, in constant time for equal lengths. */
	/* A CN that filled cn may have been cut: never a match. */
	if (n != m || n + 1 >= sizeof(cn))
		goto mismatch;
	for (size_t i = 0; i < n; i++) {
		a[i] = (char)(((unsigned char)cn[i] >= 'A' && (unsigned char)cn[i] <= 'Z')
		                      ? cn[i] + 32 : cn[i]);
		b[i] = (char)(((unsigned char)registration_code[i] >= 'A' &&
		               (unsigned char)registration_code[i] <= 'Z')
		                      ? registration_code[i] + 32 : registration_code[i]);
	}
	if (CRYPTO_memcmp(a, b, n) != 0)
		goto mismatch;
	ca_key = X509_get0_pubkey(ca);
	if (ca_key == NULL || X509_verify(verif, ca_key) != 1) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_REGCODE,
		                    "the verification certificate is not signed by the CA "
		                    "certificate's private key");
	}
	return check_times(verif, "verification certificate", IOTP_ERR_REGCODE, err);
mismatch:
	return iotp_err_set(err, IOTP_ERR_REGCODE,
	                    "the verification certificate's CN \"%.80s\" is not the "
	                    "registration code", cn);
}

EVP_PKEY *pki_cert_pubkey(X509 *cert)
{
	EVP_PKEY *key = cert != NULL ? X509_get0_pubkey(cert) : NULL;

	if (key == NULL)
		ERR_clear_error();
	return key;
}

iotp_rc pki_pubkey_fingerprint(EVP_PKEY *key, char out[65], struct iotp_err *err)
{
	unsigned char *der = NULL;
	int n = key != NULL ? i2d_PUBKEY(key, &der) : -1;
	iotp_rc rc;

	if (n <= 0)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "cannot encode the public key");
	rc = pki_sha256_hex(der, (size_t)n, out, err);
	OPENSSL_free(der);
	return rc;
}
