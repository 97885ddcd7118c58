/* node_options.h: the options of a node that a test or a benchmark starts
 * (tests/integration, tests/bench, tests/bench/net).  Header only.
 *
 * Network safety (../shared/guide/LAB.md): with bind4, bcast and iface
 * NULL the node is on loopback only (127.0.0.1, 127.255.255.255, lo);
 * the netlab benchmarks pass the addresses of the test hosts that the
 * same script created.  Never IPv6, never the machine's interfaces. */
#ifndef LC_TEST_NODE_OPTIONS_H
#define LC_TEST_NODE_OPTIONS_H

#include <stdint.h>

#include "lanchat.h"

static inline void test_node_options(lc_node_options *o, const char *dir,
                                     const char *nick, unsigned dport,
                                     uint32_t interval_ms, const char *bind4,
                                     const char *bcast, const char *iface) {
  lc_node_options_init(o);
  o->data_dir = dir;
  o->nickname = nick;
  o->discovery_port = (uint16_t)dport;
  o->bind_v4 = bind4 ? bind4 : "127.0.0.1";
  o->bind_v6 = "";
  o->interfaces = iface ? iface : "lo";
  o->broadcast = bcast ? bcast : "127.255.255.255";
  o->announce_interval_ms = interval_ms;
}

#endif /* LC_TEST_NODE_OPTIONS_H */
