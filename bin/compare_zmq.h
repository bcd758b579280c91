// The raw libzmq rows of `make compare` (issue #6) that the messaging bench
// does not have: request/reply through DEALER/ROUTER chains of 1, 2 and 3
// hops (zmq_proxy between them), PUB -> XSUB/XPUB forwarder -> SUB, and the
// path a join takes to a watcher on another node. Everything in this
// process, over tcp on loopback (and ipc where meshbus's clients use it);
// not thread-safe.
#pragma once

namespace meshbus::compare {

// Where the nodes of a raw chain get their ZeroMQ I/O thread.
enum class IoThreads {
  // A context per node (client, each proxy, the echo), as separate
  // processes have: a message crossing a hop wakes the sender's I/O thread
  // and then the receiver's. The floor for a mesh of brokers.
  kPerNode,
  // One context for all: one I/O thread writes and reads every hop, often
  // in one wake-up. No mesh of processes can do this.
  kShared,
};

struct ChainFigures {
  double p50_us = 0, p99_us = 0;  // sequential 64 B round trips
};
// `hops`: 1 (client <-> echo), 2 or 3 (with 1 or 2 proxies between).
ChainFigures MeasureChain(int hops, IoThreads io = IoThreads::kPerNode);

// 64 B messages through a forwarder, full speed; msgs/s that arrived, and
// how many did not.
double MeasureForwarder(unsigned long long* lost);

// A join's path in raw libzmq, with nothing of meshbus: three nodes, each
// one thread with its own context polling a ROUTER for its clients (ipc), a
// PUB, and a SUB on the other two's PUBs (tcp). A node answers a client's
// call and publishes it in the same turn, and hands what it hears to the
// clients that watch it. The transport's floor for the two join rows.
struct JoinPathFigures {
  double p50_us = -1;  // one call from a client of node 1 until a watcher on node 2 has it
  double per_s = -1;   // 10 clients (5 on node 1, 5 on node 3), 1,000 calls each, one at a time
};
JoinPathFigures MeasureJoinPath();

}  // namespace meshbus::compare
