// The raw libzmq rows of `make compare` (issue #6) that the messaging bench
// does not have: request/reply through DEALER/ROUTER chains of 1, 2 and 3
// hops (zmq_proxy between them), and PUB -> XSUB/XPUB forwarder -> SUB.
// Everything over tcp on loopback, in this process; not thread-safe.
#pragma once

namespace meshbus::compare {

struct ChainFigures {
  double p50_us = 0, p99_us = 0;  // sequential 64 B round trips
};
// `hops`: 1 (client <-> echo), 2 or 3 (with 1 or 2 proxies between).
ChainFigures MeasureChain(int hops);

// 64 B messages through a forwarder, full speed; msgs/s that arrived, and
// how many did not.
double MeasureForwarder(unsigned long long* lost);

}  // namespace meshbus::compare
