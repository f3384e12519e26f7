/*
 * Unit tests of the lite certificate path (src/core/pki_lite.c): device
 * certificates made with the openssl CLI in the shapes vendors ship (v3
 * with the usual extensions, v1, P-256 and P-384) are taken and read the
 * same as by the full path; the shapes it leaves to the full path (RSA,
 * compressed points, CA certificates, unknown extensions, RSA-signed) are
 * declined, never misread; and every one-byte change and truncation of a
 * taken certificate either is declined or still agrees with the full path
 * (tests/common/lite_diff.h). Needs the openssl CLI on PATH.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>

#include "common/util.h"
#include "core/pki.h"

#include "../../common/test_shell.h"

#include "../../common/lite_diff.h"

static char dir[64];

static char *slurp(const char *name, size_t *len)
{
	char file[512], *data = NULL;
	struct iotp_err err;

	snprintf(file, sizeof(file), "%s/%s", dir, name);
	if (util_read_file(file, 1 << 20, &data, len, &err) != IOTP_OK)
		fail_msg("%s: %s", name, err.msg);
	return data;
}

static X509 *load(const char *name)
{
	size_t len = 0;
	char *pem = slurp(name, &len);
	X509 *x = NULL;
	struct iotp_err err;

	if (pki_cert_parse(pem, len, &x, &err) != IOTP_OK)
		fail_msg("%s: %s", name, err.msg);
	free(pem);
	return x;
}

/* A key (openssl genpkey algorithm options), a CSR for cn, a certificate
 * from the CA called ca with the extension file ext ("" for a v1
 * certificate) and the digest md. */
static void make_device(const char *name, const char *keyopts, const char *ca, const char *ext,
                        const char *md)
{
	char extarg[128] = "";

	if (*ext != '\0')
		snprintf(extarg, sizeof(extarg), "-extfile %s", ext);
	if (test_sh(dir, "openssl genpkey %s -out %s.key && "
	       "openssl req -new -key %s.key -subj '/C=DE/O=Acme Devices/CN=%s' -out %s.csr && "
	       "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -set_serial 0x00f1%04x "
	       "-days 10 -%s %s -out %s.pem",
	       keyopts, name, name, name, name, name, ca, ca, (unsigned)strlen(name), md, extarg,
	       name) != 0)
		fail_msg("cannot make %s", name);
}

static int group_setup(void **state)
{
	FILE *f;
	char file[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/iotp-lite-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(file, sizeof(file), "%s/leaf.ext", dir);
	if ((f = fopen(file, "w")) == NULL)
		return -1;
	fputs("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
	      "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\n"
	      "authorityKeyIdentifier=keyid\nsubjectAltName=DNS:dev.example.com\n", f);
	fclose(f);
	snprintf(file, sizeof(file), "%s/ca.ext", dir);
	if ((f = fopen(file, "w")) == NULL)
		return -1;
	fputs("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n"
	      "subjectKeyIdentifier=hash\n", f);
	fclose(f);
	snprintf(file, sizeof(file), "%s/odd.ext", dir);
	if ((f = fopen(file, "w")) == NULL)
		return -1;
	fputs("basicConstraints=critical,CA:FALSE\n1.3.6.1.4.1.55555.1=ASN1:UTF8String:vendor\n",
	      f);
	fclose(f);
	/* Two P-256 CAs with the same name (a look-alike), an RSA CA. */
	if (test_sh(dir, "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key && "
	       "openssl req -x509 -new -key ca.key -subj '/O=Acme/CN=Acme Device CA' -days 30 "
	       "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
	       "-out ca.pem && "
	       "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out fake.key && "
	       "openssl req -x509 -new -key fake.key -subj '/O=Acme/CN=Acme Device CA' -days 30 "
	       "-addext basicConstraints=critical,CA:TRUE -out fake.pem && "
	       "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsaca.key && "
	       "openssl req -x509 -new -key rsaca.key -subj '/CN=RSA CA' -days 30 "
	       "-addext basicConstraints=critical,CA:TRUE -out rsaca.pem") != 0)
		return -1;
	make_device("v3", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", "ca", "leaf.ext",
	            "sha256");
	make_device("v1", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", "ca", "", "sha256");
	make_device("p384", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384", "ca", "leaf.ext",
	            "sha384");
	make_device("rsa", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048", "ca", "leaf.ext",
	            "sha256");
	make_device("subca", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", "ca", "ca.ext",
	            "sha256");
	make_device("odd", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", "ca", "odd.ext",
	            "sha256");
	make_device("byrsa", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", "rsaca",
	            "leaf.ext", "sha256");
	make_device("k1", "-algorithm EC -pkeyopt ec_paramgen_curve:secp256k1", "ca", "leaf.ext",
	            "sha256");
	/* The v3 device's key as a compressed point, certified as such. */
	if (test_sh(dir, "openssl ec -in v3.key -conv_form compressed -out cmp.key && "
	       "openssl req -new -key cmp.key -subj '/CN=cmp' -out cmp.csr && "
	       "openssl x509 -req -in cmp.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 10 "
	       "-extfile leaf.ext -out cmp.pem && "
	       "openssl x509 -in cmp.pem -noout -text | grep -q 'pub:' && "
	       "openssl x509 -in v3.pem -outform DER -out v3.der") != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* lite_diff on the file name against the CA file ca; returns the verdict. */
static int diff_file(const char *name, const char *ca)
{
	size_t len = 0;
	char *data = slurp(name, &len), why[160];
	X509 *cax = load(ca);
	int v = lite_diff(data, len, cax, why);

	if (v < 0)
		fail_msg("%s: %s", name, why);
	free(data);
	X509_free(cax);
	return v;
}

static void test_common_shapes_taken(void **state)
{
	(void)state;
	assert_int_equal(diff_file("v3.pem", "ca.pem"), 1);
	assert_int_equal(diff_file("v1.pem", "ca.pem"), 1);
	assert_int_equal(diff_file("p384.pem", "ca.pem"), 1);
	assert_int_equal(diff_file("v3.der", "ca.pem"), 1);
}

static void test_unusual_shapes_declined(void **state)
{
	(void)state;
	assert_int_equal(diff_file("rsa.pem", "ca.pem"), 0);
	assert_int_equal(diff_file("subca.pem", "ca.pem"), 0);
	assert_int_equal(diff_file("odd.pem", "ca.pem"), 0);
	assert_int_equal(diff_file("byrsa.pem", "rsaca.pem"), 0);
	assert_int_equal(diff_file("k1.pem", "ca.pem"), 0);
	assert_int_equal(diff_file("cmp.pem", "ca.pem"), 0);
	assert_int_equal(pki_lite_parse("", 0, &(struct pki_cert_lite *){NULL}), 0);
	assert_int_equal(diff_file("ca.key", "ca.pem"), 0);
}

static void test_signed_by(void **state)
{
	size_t len = 0;
	char *pem = slurp("v3.pem", &len);
	struct pki_cert_lite *lc = NULL;
	X509 *ca = load("ca.pem"), *fake = load("fake.pem"), *rsa = load("rsaca.pem");

	(void)state;
	assert_int_equal(pki_lite_parse(pem, len, &lc), 1);
	assert_int_equal(pki_lite_signed_by(lc, ca), 1);
	/* Same name, another key; an RSA key; no CA. */
	assert_int_equal(pki_lite_signed_by(lc, fake), 0);
	assert_int_equal(pki_lite_signed_by(lc, rsa), 0);
	assert_int_equal(pki_lite_signed_by(lc, NULL), 0);
	assert_int_equal(ERR_peek_error(), 0);
	pki_lite_free(lc);
	X509_free(ca);
	X509_free(fake);
	X509_free(rsa);
	free(pem);
}

/* Every byte flipped three ways and every truncation of the v3 DER. */
static void test_mutations_agree(void **state)
{
	size_t len = 0;
	unsigned char *der = (unsigned char *)slurp("v3.der", &len), *m = malloc(len);
	X509 *ca = load("ca.pem");
	static const unsigned char flips[] = {0x01, 0x80, 0xff};
	int taken = 0, tried = 0;
	char why[160];

	(void)state;
	assert_non_null(m);
	for (size_t i = 0; i < len; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			int v;

			memcpy(m, der, len);
			m[i] ^= flips[f];
			if ((v = lite_diff(m, len, ca, why)) < 0)
				fail_msg("byte %zu ^ 0x%02x: %s", i, flips[f], why);
			taken += v;
			tried++;
		}
		if (lite_diff(der, i, ca, why) != 0)
			fail_msg("truncated to %zu bytes: %s", i, why[0] ? why : "taken");
	}
	/* Changes inside names, serial and signature bytes still parse: the
	 * test must have compared a good number of taken certificates. */
	assert_true(taken > 50);
	assert_true(tried == (int)(3 * len));
	X509_free(ca);
	free(m);
	free(der);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_shapes_taken),
		cmocka_unit_test(test_unusual_shapes_declined),
		cmocka_unit_test(test_signed_by),
		cmocka_unit_test(test_mutations_agree),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
