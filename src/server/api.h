/*
 * The API's route tables. Each module of routes (base, things, certificates,
 * ...) defines one `const struct route_table` next to its handlers; api.c
 * lists them all for the server. A new module is its file plus one line in
 * api.c and one declaration here.
 */
#ifndef IOTP_API_H
#define IOTP_API_H

#include <stddef.h>

#include "server/router.h"

/* GET /healthz, GET /metrics, GET /endpoint (api_base.c). */
extern const struct route_table api_base_routes;

/* Things, thing principals and thing types (api_things.c). */
extern const struct route_table api_thing_routes;
/* Thing groups and membership (api_groups.c). */
extern const struct route_table api_group_routes;
/* Policies, versions, attachments (api_policies.c). */
extern const struct route_table api_policy_routes;
/* Certificates (api_certs.c). */
extern const struct route_table api_cert_routes;
/* CA certificates and the registration code (api_cas.c). */
extern const struct route_table api_ca_routes;
/* The iotprov audit log, GET /iotprov/audit (api_audit.c). */
extern const struct route_table api_audit_routes;
/* Thing registration tasks and input uploads (api_tasks.c, api_tasks.h). */
extern const struct route_table api_task_routes;
/* Authorized key lists and POST /provisioning/csr (api_authlist.c). */
extern const struct route_table api_authlist_routes;
/* EST under /.well-known/est/ (est.c, est.h). */
extern const struct route_table api_est_routes;
/* Provisioning templates, RegisterThing, CreateProvisioningClaim (api_prov.c). */
extern const struct route_table api_prov_routes;

/* Every table the server serves, in api.c. */
extern const struct route_table *const api_tables[];
extern const size_t api_table_count;

/* The endpoint devices use (DescribeEndpoint): [mqtt] endpoint when set,
 * else the host of [mqtt] listen (a wildcard listen address is replaced by
 * the first of [pki] server_names), with ":port" appended unless the port
 * is 8883. */
iotp_rc api_mqtt_endpoint(const struct iotp_conf *conf, char *out, size_t size,
                          struct iotp_err *err);

#endif
