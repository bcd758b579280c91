// StoreLeader: one candidate for the leadership of one store (DESIGN.md §6,
// issue #5). Candidates on several nodes contend for the store's leader name
// in the consistent registry ("$es/leader/<store>"); the one that holds it is
// activated, and only there is IsActive() true. Activation saves the default
// "$all" subscription once (CreateRecord: a second activation finds it and
// saves nothing) and runs an emitter pool for every subscription of the
// store, with each subscription's pool size. While active it follows the
// store's "subscriptions" trackers (created starts a pool, updated restarts
// it, deleted stops it) and re-reads the subscriptions every
// reconcile_interval, so a notice it missed costs at most that long.
//
// When the leader's session ends (its process or node died, or Stop()), the
// registry releases the name and a waiting candidate, which watches it, takes
// over. An active leader confirms linearizably, three times per lease, that
// it still holds the name. When its last confirmation is older than the lease
// (a minority partition, a registry it cannot reach), a watchdog stops its
// emitters at once; when it learns the name is lost (taken, released,
// no_leader, or two confirmations in a row without an answer) it stops its
// pools and contends again. With the lease below the mesh's failure detection
// time, an old leader has fenced itself before the registry can give the name
// to another. Pools are checked at every re-read: an emitter whose session
// was lost is replaced. A candidate whose own session is lost (its broker
// restarted) connects again and contends again.
//
// Each emitter is an Emitter (sdk/emitter.h): a session and a thread of its
// own. Thread-safe: every method may be called from any thread. Owns its
// threads and sessions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "sdk/client.h"
#include "topics/eventstore.h"

namespace meshbus::eventstore {

struct StoreLeaderOptions {
  ClientOptions client;  // the broker to use; each session names itself after its role
  std::string store;
  // How often an active leader re-reads the subscriptions, and how often a
  // candidate tries again when it could not reach the registry.
  std::chrono::milliseconds reconcile_interval{1000};
  // An active leader confirms it holds the name three times per lease; when
  // its last confirmation is older than this, it stops its emitters and
  // IsActive() turns false until it confirms again. Below the mesh's failure
  // detection time (0.9 s by default), an old leader cut off from the
  // registry has stopped before the registry can give the name to another.
  std::chrono::milliseconds lease{600};
};

class StoreLeader {
 public:
  // Connects and starts contending at once; kInvalidArgument for a bad store
  // id, or the error of the first connect.
  static Result<std::unique_ptr<StoreLeader>> Start(StoreLeaderOptions options);
  ~StoreLeader();  // Stop()
  StoreLeader(const StoreLeader&) = delete;
  StoreLeader& operator=(const StoreLeader&) = delete;

  // Stops the pools, releases the name (another candidate takes over) and ends the sessions.
  void Stop();

  bool IsActive() const;
  // The emitter pools running now: subscription id -> emitters.
  std::map<std::string, uint32_t> Pools() const;
  // How many times this candidate was activated.
  uint64_t activations() const;
  // The candidate's own session (the leader name's holder when active).
  MemberId self() const;

 private:
  struct Impl;
  explicit StoreLeader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Who leads a store, as the registry's local copy has it.
struct StoreLeaderInfo {
  MemberId holder;
  bool active = false;  // false: the holder is still starting its pools
};
// kNotFound when no candidate holds the name.
Result<StoreLeaderInfo> StoreLeaderOf(Client& client, const std::string& store);

}  // namespace meshbus::eventstore
