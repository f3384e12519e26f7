/*
 * Routes for device certificates: CreateKeysAndCertificate,
 * CreateCertificateFromCsr, RegisterCertificate(WithoutCA),
 * DescribeCertificate, ListCertificates(ByCA), UpdateCertificate and
 * DeleteCertificate. Issuance, validation and the status rules are the
 * registry's; the routes count what they issue in the metrics
 * (iotprov_certificates_issued_total).
 */
#include <stdio.h>
#include <string.h>

#include "core/registry.h"
#include "server/api.h"
#include "server/api_json.h"
#include "server/api_parse.h"
#include "server/metrics.h"

/* Status a certificate created here starts in (query setAsActive). */
static iotp_rc initial_status(const struct api_request *rq, enum registry_cert_status *out,
                              struct iotp_err *err)
{
	int active = 0;
	iotp_rc rc = api_query_bool(rq, "setAsActive", &active, err);

	if (rc == IOTP_OK)
		*out = active ? REGISTRY_CERT_ACTIVE : REGISTRY_CERT_INACTIVE;
	return rc;
}

static iotp_rc create_keys_and_certificate(struct api_request *rq, struct api_response *resp,
                                           struct iotp_err *err)
{
	struct registry_cert_created c = {0};
	enum registry_cert_status status;
	iotp_rc rc;

	if ((rc = initial_status(rq, &status, err)) != IOTP_OK ||
	    (rc = registry_cert_create_with_keys(rq->core, rq->actor, status, &c, err)) != IOTP_OK)
		goto out;
	metrics_cert_issued(rq->metrics, 1);
	/* The private key exists only in this answer: iotprov never stores it,
	 * and the answer is written so that every copy is wiped. */
	{
		const char *members[] = {"certificateArn", c.arn, "certificateId", c.id,
		                         "certificatePem", c.pem};

		rc = api_reply_with_key(resp, members, 3, c.public_key_pem, c.private_key_pem, NULL,
		                        0, err);
	}
out:
	registry_cert_created_cleanup(&c);
	return rc;
}

static iotp_rc create_certificate_from_csr(struct api_request *rq, struct api_response *resp,
                                           struct iotp_err *err)
{
	struct registry_cert_created c = {0};
	enum registry_cert_status status;
	const char *csr = NULL;
	iotp_rc rc;

	if ((rc = initial_status(rq, &status, err)) != IOTP_OK ||
	    (rc = api_parse_create_cert_from_csr(rq->json, &csr, err)) != IOTP_OK ||
	    (rc = registry_cert_create_from_csr(rq->core, rq->actor, csr, strlen(csr), status, &c,
	                                        err)) != IOTP_OK)
		goto out;
	metrics_cert_issued(rq->metrics, 1);
	rc = api_reply(resp,
	               json_pack("{s:s, s:s, s:s}", "certificateArn", c.arn, "certificateId", c.id,
	                         "certificatePem", c.pem),
	               err);
out:
	registry_cert_created_cleanup(&c);
	return rc;
}

static iotp_rc register_common(struct api_request *rq, struct api_response *resp, int with_ca,
                               struct iotp_err *err)
{
	struct registry_cert_register in;
	struct registry_ref ref;
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	if (with_ca && (rc = api_query_bool(rq, "setAsActive", &in.set_active, err)) != IOTP_OK)
		return rc;
	if ((rc = api_parse_register_cert(rq->json, with_ca, &in, err)) != IOTP_OK)
		return rc;
	if (with_ca)
		rc = registry_cert_register(rq->core, rq->actor, &in, &ref, err);
	else
		rc = registry_cert_register_no_ca(rq->core, rq->actor, &in, &ref, err);
	if (rc == IOTP_ERR_EXISTS)
		api_exists_extra_pem(rq, resp, in.cert_pem, "cert");
	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp,
	                 json_pack("{s:s, s:s}", "certificateArn", ref.arn, "certificateId", ref.id),
	                 err);
}

static iotp_rc register_certificate(struct api_request *rq, struct api_response *resp,
                                    struct iotp_err *err)
{
	return register_common(rq, resp, 1, err);
}

static iotp_rc register_certificate_without_ca(struct api_request *rq,
                                               struct api_response *resp, struct iotp_err *err)
{
	return register_common(rq, resp, 0, err);
}

static iotp_rc describe_certificate(struct api_request *rq, struct api_response *resp,
                                    struct iotp_err *err)
{
	struct registry_cert c = {0};
	json_t *d = NULL;
	iotp_rc rc = registry_cert_describe(rq->core, api_param(rq, "certificateId"), &c, err);

	if (rc != IOTP_OK)
		goto out;
	d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I}, s:s}",
	              "certificateArn", c.arn, "certificateId", c.id, "status",
	              registry_cert_status_name(c.status), "certificatePem",
	              c.pem != NULL ? c.pem : "", "ownedBy", rq->core->conf->account_id,
	              "creationDate", (json_int_t)c.created, "lastModifiedDate",
	              (json_int_t)c.updated, "customerVersion", (json_int_t)c.customer_version,
	              "validity", "notBefore", (json_int_t)c.not_before, "notAfter",
	              (json_int_t)c.not_after, "certificateMode", c.mode);
	if (d != NULL &&
	    (api_json_set_opt(d, "caCertificateId", c.ca_id) != 0 ||
	     api_json_set_num_str(d, "generationId", c.generation) != 0)) {
		json_decref(d);
		d = NULL;
	}
	rc = api_reply(resp, api_json_wrap("certificateDescription", d), err);
out:
	registry_cert_cleanup(&c);
	return rc;
}

static iotp_rc list_common(struct api_request *rq, struct api_response *resp, const char *ca_id,
                           struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_cert_list list = {0};
	int ascending = 0;
	json_t *items;
	iotp_rc rc;

	if ((rc = api_query_bool(rq, "isAscendingOrder", &ascending, err)) != IOTP_OK ||
	    (rc = api_page_from_query(rq, "marker", "pageSize", &page, err)) != IOTP_OK ||
	    (rc = registry_cert_list(rq->core, ca_id, ascending, &page, &list, err)) != IOTP_OK)
		goto out;
	items = json_array();
	for (size_t i = 0; i < list.count; i++) {
		const struct registry_cert *c = &list.items[i];

		api_json_push(&items, json_pack("{s:s, s:s, s:s, s:s, s:I}", "certificateArn", c->arn,
		                                "certificateId", c->id, "status",
		                                registry_cert_status_name(c->status),
		                                "certificateMode", c->mode, "creationDate",
		                                (json_int_t)c->created));
	}
	rc = api_reply(resp, api_page_json("certificates", items, "nextMarker", list.next_token),
	               err);
out:
	registry_cert_list_cleanup(&list);
	return rc;
}

static iotp_rc list_certificates(struct api_request *rq, struct api_response *resp,
                                 struct iotp_err *err)
{
	return list_common(rq, resp, NULL, err);
}

static iotp_rc list_certificates_by_ca(struct api_request *rq, struct api_response *resp,
                                       struct iotp_err *err)
{
	return list_common(rq, resp, api_param(rq, "caCertificateId"), err);
}

static iotp_rc update_certificate(struct api_request *rq, struct api_response *resp,
                                  struct iotp_err *err)
{
	const char *s = api_query(rq, "newStatus");
	enum registry_cert_status status;
	iotp_rc rc;

	if (s == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "newStatus is required");
	if ((rc = registry_cert_status_parse(s, &status, err)) != IOTP_OK ||
	    (rc = registry_cert_update_status(rq->core, rq->actor, api_param(rq, "certificateId"),
	                                      status, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc delete_certificate(struct api_request *rq, struct api_response *resp,
                                  struct iotp_err *err)
{
	int force = 0;
	iotp_rc rc;

	if ((rc = api_query_bool(rq, "forceDelete", &force, err)) != IOTP_OK ||
	    (rc = registry_cert_delete(rq->core, rq->actor, api_param(rq, "certificateId"), force,
	                               err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static const struct route routes[] = {
	{"POST", "/keys-and-certificate", "CreateKeysAndCertificate", 0, NULL,
	 create_keys_and_certificate},
	{"POST", "/certificates", "CreateCertificateFromCsr", ROUTE_JSON, NULL,
	 create_certificate_from_csr},
	{"POST", "/certificate/register", "RegisterCertificate", ROUTE_JSON, NULL,
	 register_certificate},
	{"POST", "/certificate/register-no-ca", "RegisterCertificateWithoutCA", ROUTE_JSON, NULL,
	 register_certificate_without_ca},
	{"GET", "/certificates/{certificateId}", "DescribeCertificate", 0, NULL,
	 describe_certificate},
	{"GET", "/certificates", "ListCertificates", 0, NULL, list_certificates},
	{"GET", "/certificates-by-ca/{caCertificateId}", "ListCertificatesByCA", 0, NULL,
	 list_certificates_by_ca},
	{"PUT", "/certificates/{certificateId}", "UpdateCertificate", 0, NULL, update_certificate},
	{"DELETE", "/certificates/{certificateId}", "DeleteCertificate", 0, NULL,
	 delete_certificate},
};

const struct route_table api_cert_routes = {routes, sizeof(routes) / sizeof(routes[0])};
