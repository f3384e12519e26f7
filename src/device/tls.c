/*
 * Client TLS contexts for the device: trust only the given roots, check
 * the server's name or IP address, and present the device certificate with
 * the keystore's key. The EVP_PKEY of a PKCS#11 key goes to
 * SSL_CTX_use_PrivateKey as is, so the handshake signature is made inside
 * the token. Built once per identity and handed to libmosquitto
 * (MOSQ_OPT_SSL_CTX) and libcurl, so a reconnect does not rebuild it.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/pki.h"
#include "device/dev.h"

static int is_ip(const char *host)
{
	ASN1_OCTET_STRING *o = a2i_IPADDRESS(host);

	if (o == NULL) {
		ERR_clear_error();
		return 0;
	}
	ASN1_OCTET_STRING_free(o);
	return 1;
}

iotp_rc iotp_tls_ctx_new(const char *ca_file, const char *host, const char *cert_pem,
                         size_t cert_len, iotp_keystore *key, SSL_CTX **out,
                         struct iotp_err *err)
{
	SSL_CTX *ctx = NULL;
	STACK_OF(X509) *certs = NULL;
	X509_VERIFY_PARAM *param;
	int i;
	iotp_rc rc = IOTP_OK;

	if (ca_file == NULL || ca_file[0] == '\0' || host == NULL || host[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "TLS needs a CA file and a server name");
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return iotp_err_ssl(err, IOTP_ERR_NOMEM, "SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CONFIG, "load trusted roots from %s", ca_file);
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	param = SSL_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if ((is_ip(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
	                 : X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_INVALID, "server name %s", host);
		goto out;
	}
	if (cert_pem != NULL) {
		if (key == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "a client certificate needs its key");
			goto out;
		}
		if ((rc = pki_cert_parse_bundle(cert_pem, cert_len, &certs, err)) != IOTP_OK)
			goto out;
		if (SSL_CTX_use_certificate(ctx, sk_X509_value(certs, 0)) != 1) {
			rc = iotp_err_ssl(err, IOTP_ERR_CERT, "use the device certificate");
			goto out;
		}
		for (i = 1; i < sk_X509_num(certs); i++)
			if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(certs, i)) != 1) {
				rc = iotp_err_ssl(err, IOTP_ERR_CERT, "add a chain certificate");
				goto out;
			}
		if (SSL_CTX_use_PrivateKey(ctx, iotp_keystore_pkey(key)) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			rc = iotp_err_ssl(err, IOTP_ERR_CERT,
			                  "the certificate does not match the device key");
			goto out;
		}
	}
	*out = ctx;
	ctx = NULL;
out:
	sk_X509_pop_free(certs, X509_free);
	SSL_CTX_free(ctx);
	return rc;
}
