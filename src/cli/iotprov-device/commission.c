/*
 * `iotprov-device commission`: network commissioning of a factory-fresh
 * device (local web page, serial console, removable media). The command is
 * libiotprov-device's commissioning agent (src/device/commission_agent.c);
 * this file only plugs it into the command table.
 */
#include "cli/iotprov-device/cli.h"
#include "device/commission.h"

int cmd_commission(int argc, char **argv)
{
	return commission_agent_main(argc, argv);
}
