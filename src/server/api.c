/*
 * The list of route tables the API serves (see api.h).
 */
#include "server/api.h"

const struct route_table *const api_tables[] = {
	&api_base_routes,
	&api_thing_routes,
	&api_group_routes,
	&api_policy_routes,
	&api_cert_routes,
	&api_ca_routes,
	&api_audit_routes,
	&api_task_routes,
	&api_authlist_routes,
	&api_est_routes,
	&api_prov_routes,
};
const size_t api_table_count = sizeof(api_tables) / sizeof(api_tables[0]);
