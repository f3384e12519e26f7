/*
 * Fixtures of the device unit tests (see helpers.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "common/util.h"
#include "helpers.h"

struct pki_ca th_ca;
static char dir[128];

const char *th_path(const char *name)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, 512, "%s/%s", dir, name);
	return b;
}

const char *th_p11(const char *object)
{
	static char bufs[4][256];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, 256, "pkcs11:token=%s;object=%s;pin-value=%s", TH_TOKEN, object, TH_PIN);
	return b;
}

void th_write(const char *name, const char *text, int mode)
{
	FILE *f = fopen(th_path(name), "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(th_path(name), (mode_t)mode), 0);
}

char *th_issue(EVP_PKEY *key, const char *cn)
{
	struct pki_issue_opts o = { .days = 30, .not_before_skew = 60 };
	X509 *x = NULL;
	char *pem = NULL;

	assert_int_equal(pki_cert_issue_for_key(&th_ca, key, cn, &o, &x, NULL), IOTP_OK);
	assert_int_equal(pki_cert_to_pem(x, &pem, NULL), IOTP_OK);
	X509_free(x);
	return pem;
}

void th_server_cert(char **cert_pem, char **key_pem)
{
	EVP_PKEY *k = NULL;
	X509 *x = NULL;

	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &k, NULL), IOTP_OK);
	assert_int_equal(pki_server_cert_create(&th_ca, k, "127.0.0.1,localhost", 30, &x, NULL),
	                 IOTP_OK);
	assert_int_equal(pki_cert_to_pem(x, cert_pem, NULL), IOTP_OK);
	assert_int_equal(pki_key_to_pem(k, key_pem, NULL), IOTP_OK);
	X509_free(x);
	EVP_PKEY_free(k);
}

int th_setup(void)
{
	char conf[1024], cmd[1024];
	FILE *f;
	int st;

	snprintf(dir, sizeof(dir), "/tmp/iotp-unit-device-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	if (pki_key_generate(PKI_KEY_EC_P256, &th_ca.key, NULL) != IOTP_OK ||
	    pki_ca_create_root(th_ca.key, "device unit test CA", 30, &th_ca.cert, NULL) != IOTP_OK)
		return -1;
	f = fopen(th_path("ca.pem"), "w");
	if (f == NULL || PEM_write_X509(f, th_ca.cert) != 1)
		return -1;
	fclose(f);
	/* A token of our own: SoftHSM2 reads its config from SOFTHSM2_CONF. */
	mkdir(th_path("tokens"), 0700);
	snprintf(conf, sizeof(conf),
	         "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
	         th_path("tokens"));
	f = fopen(th_path("softhsm2.conf"), "w");
	if (f == NULL)
		return -1;
	fputs(conf, f);
	fclose(f);
	setenv("SOFTHSM2_CONF", th_path("softhsm2.conf"), 1);
	snprintf(cmd, sizeof(cmd),
	         "softhsm2-util --init-token --free --label %s --pin %s --so-pin 5678 >/dev/null",
	         TH_TOKEN, TH_PIN);
	st = system(cmd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

void th_teardown(void)
{
	char cmd[256];

	pki_ca_cleanup(&th_ca);
	if (dir[0] != '\0' && strncmp(dir, "/tmp/iotp-unit-device-", 22) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}
