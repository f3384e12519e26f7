/*
 * Routes for CA certificates: GetRegistrationCode, RegisterCACertificate
 * (proof of possession with the verification certificate, checked by the
 * registry), Describe/Update/Delete/ListCACertificates. Registering,
 * changing and deleting a CA and the registration code need an admin key
 * (the role table of core/accesskey.c): a CA decides which device
 * certificates are trusted.
 */
#include <stdio.h>
#include <string.h>

#include "core/registry.h"
#include "server/api.h"
#include "server/api_json.h"
#include "server/api_parse.h"

static iotp_rc get_registration_code(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	char code[65];
	iotp_rc rc = registry_regcode_get(rq->core, rq->actor, code, err);

	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:s}", "registrationCode", code), err);
}

static iotp_rc register_ca_certificate(struct api_request *rq, struct api_response *resp,
                                       struct iotp_err *err)
{
	struct registry_ca_register in;
	struct registry_ref ref;
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	if ((rc = api_query_bool(rq, "setAsActive", &in.set_active, err)) != IOTP_OK ||
	    (rc = api_query_bool(rq, "allowAutoRegistration", &in.allow_auto_registration, err)) !=
	        IOTP_OK ||
	    (rc = api_parse_register_ca(rq->json, &in, err)) != IOTP_OK)
		return rc;
	rc = registry_ca_register(rq->core, rq->actor, &in, &ref, err);
	if (rc == IOTP_ERR_EXISTS)
		api_exists_extra_pem(rq, resp, in.ca_pem, "cacert");
	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp,
	                 json_pack("{s:s, s:s}", "certificateArn", ref.arn, "certificateId", ref.id),
	                 err);
}

static iotp_rc describe_ca_certificate(struct api_request *rq, struct api_response *resp,
                                       struct iotp_err *err)
{
	struct registry_ca ca = {0};
	json_t *d = NULL, *o = NULL;
	iotp_rc rc = registry_ca_describe(rq->core, api_param(rq, "caCertificateId"), &ca, err);

	if (rc != IOTP_OK)
		goto out;
	d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:{s:I, s:I}, s:s}",
	              "certificateArn", ca.arn, "certificateId", ca.id, "status",
	              ca.active ? "ACTIVE" : "INACTIVE", "certificatePem",
	              ca.pem != NULL ? ca.pem : "", "ownedBy", rq->core->conf->account_id,
	              "creationDate", (json_int_t)ca.created, "autoRegistrationStatus",
	              ca.auto_registration ? "ENABLE" : "DISABLE", "lastModifiedDate",
	              (json_int_t)ca.updated, "customerVersion", (json_int_t)ca.customer_version,
	              "validity", "notBefore", (json_int_t)ca.not_before, "notAfter",
	              (json_int_t)ca.not_after, "certificateMode", ca.mode);
	if (d != NULL && api_json_set_num_str(d, "generationId", ca.generation) != 0) {
		json_decref(d);
		d = NULL;
	}
	o = api_json_wrap("certificateDescription", d);
	if (o != NULL && ca.registration_config != NULL &&
	    json_object_set(o, "registrationConfig", ca.registration_config) != 0) {
		json_decref(o);
		o = NULL;
	}
	rc = api_reply(resp, o, err);
out:
	registry_ca_cleanup(&ca);
	return rc;
}

static iotp_rc update_ca_certificate(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	struct registry_ca_update up;
	iotp_rc rc;

	memset(&up, 0, sizeof(up));
	up.id = api_param(rq, "caCertificateId");
	up.new_status = api_query(rq, "newStatus");
	up.new_auto_registration = api_query(rq, "newAutoRegistrationStatus");
	if ((rc = api_parse_update_ca(rq->json, &up, err)) != IOTP_OK ||
	    (rc = registry_ca_update(rq->core, rq->actor, &up, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc delete_ca_certificate(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	iotp_rc rc = registry_ca_delete(rq->core, rq->actor, api_param(rq, "caCertificateId"), err);

	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc list_ca_certificates(struct api_request *rq, struct api_response *resp,
                                    struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_ca_list list = {0};
	int ascending = 0;
	json_t *items;
	iotp_rc rc;

	if ((rc = api_query_bool(rq, "isAscendingOrder", &ascending, err)) != IOTP_OK ||
	    (rc = api_page_from_query(rq, "marker", "pageSize", &page, err)) != IOTP_OK ||
	    (rc = registry_ca_list(rq->core, ascending, api_query(rq, "templateName"), &page, &list,
	                           err)) != IOTP_OK)
		goto out;
	items = json_array();
	for (size_t i = 0; i < list.count; i++) {
		const struct registry_ca *ca = &list.items[i];

		api_json_push(&items, json_pack("{s:s, s:s, s:s, s:I}", "certificateArn", ca->arn,
		                                "certificateId", ca->id, "status",
		                                ca->active ? "ACTIVE" : "INACTIVE", "creationDate",
		                                (json_int_t)ca->created));
	}
	rc = api_reply(resp, api_page_json("certificates", items, "nextMarker", list.next_token),
	               err);
out:
	registry_ca_list_cleanup(&list);
	return rc;
}

static const struct route routes[] = {
	{"GET", "/registrationcode", "GetRegistrationCode", 0, NULL, get_registration_code},
	{"POST", "/cacertificate", "RegisterCACertificate", ROUTE_JSON, NULL,
	 register_ca_certificate},
	{"GET", "/cacertificate/{caCertificateId}", "DescribeCACertificate", 0, NULL,
	 describe_ca_certificate},
	{"PUT", "/cacertificate/{caCertificateId}", "UpdateCACertificate", ROUTE_JSON, NULL,
	 update_ca_certificate},
	{"DELETE", "/cacertificate/{caCertificateId}", "DeleteCACertificate", 0, NULL,
	 delete_ca_certificate},
	{"GET", "/cacertificates", "ListCACertificates", 0, NULL, list_ca_certificates},
};

const struct route_table api_ca_routes = {routes, sizeof(routes) / sizeof(routes[0])};
