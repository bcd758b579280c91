// Broker: one node's meshbus broker. Start() binds every socket before it
// returns (so a bad address is an error there, with nothing half-started)
// and then runs the broker's loop on a thread of its own, which owns every
// socket and all state. Thread-safe: every public method may be called from
// any thread; they queue work for the loop and wake it through an eventfd.
//
// The test hooks below (partition, delta loss, forced resync) exist so that
// integration tests can make real brokers misbehave on purpose; meshbusd does
// not expose them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/options.h"
#include "topics/status.h"

namespace meshbus {

class BrokerLoop;

class Broker {
 public:
  static Result<std::unique_ptr<Broker>> Start(BrokerOptions options);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Stops the loop and closes every socket. Graceful: peers are told (bye)
  // and purge this node at once. Not graceful: as if the process died.
  void Stop(bool graceful = true);

  const std::string& node() const;
  uint64_t incarnation() const;
  const std::string& client_endpoint() const;  // where SDK clients connect
  const std::string& calls_endpoint() const;   // what peers use as a seed

  // Counters: messages, bad input, resyncs, purges, ...
  std::map<std::string, uint64_t> Stats();

  // ---- test hooks ----
  // Drops every message from, and sends nothing to, the named nodes: a
  // partition, as far as this broker is concerned. Empty: heals.
  void SetBlockedPeers(std::vector<std::string> nodes);
  // The next n membership deltas are numbered but not published.
  void DropNextDeltas(int n);
  // Asks every peer for a fresh snapshot, as after a gap.
  void ForceResync();
  // The next n publishes or broadcasts to peers are numbered but not sent.
  void DropNextData(int n);
  // The next n sends of a peer's call batch fail, as when ZeroMQ refuses
  // them (the peer's queue is full, or its link is down).
  void FailNextCallSends(int n);
  // The next n sends of a client's batch of deliveries fail, as when its
  // ZeroMQ queue is full.
  void FailNextDeliveryFlushes(int n);

 private:
  explicit Broker(std::unique_ptr<BrokerLoop> loop);
  std::unique_ptr<BrokerLoop> loop_;
};

}  // namespace meshbus
