/*
 * The list of route tables the API serves (see api.h).
 */
#include "server/api.h"

const struct route_table *const api_tables[] = {
	&api_base_routes,
};
const size_t api_table_count = sizeof(api_tables) / sizeof(api_tables[0]);
