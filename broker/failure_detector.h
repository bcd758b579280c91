// FailureDetector: decides when a peer broker is dead. Pure (time comes in as
// an argument, so tests run it on a fake clock); not thread-safe (owned by the
// broker's loop thread).
//
// Two paths lead to a verdict:
//  - Silence: nothing heard for `suspicion_timeout` makes a peer suspect and
//    asks for a direct probe; nothing heard for `probe_timeout` after that
//    makes it dead. Any message from the peer counts, not only heartbeats.
//  - Disconnect: the transport reports the connection to the peer closed. We
//    probe, and if a reconnect attempt is then refused (nothing listens at the
//    peer's address any more: the process is gone) it is dead at once. If the
//    connection comes back the peer is alive again once it is heard. If
//    neither happens, `disconnect_timeout` decides.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

namespace meshbus {

class FailureDetector {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = std::chrono::milliseconds;

  struct Options {
    Duration suspicion_timeout{500};
    Duration probe_timeout{400};
    Duration disconnect_timeout{300};
    // Refused reconnects, after a disconnect, that confirm the peer is gone.
    // libzmq reports one "retry" when it schedules the first reconnect and
    // one per refused attempt, so 2 means one attempt was refused.
    int refused_retries_for_dead = 2;
  };

  struct Verdicts {
    std::vector<std::string> probe;  // send a probe to these now
    std::vector<std::string> dead;   // declare these dead (and Forget them);
                                     // each peer once until it is tracked again
  };

  explicit FailureDetector(Options options) : options_(options) {}

  void Track(const std::string& peer, TimePoint now);
  void Forget(const std::string& peer);
  bool Tracks(const std::string& peer) const { return peers_.count(peer) != 0; }

  void Heard(const std::string& peer, TimePoint now);
  void ProbeAnswered(const std::string& peer, TimePoint now);
  void Disconnected(const std::string& peer, TimePoint now);
  void Connected(const std::string& peer, TimePoint now);
  void ConnectRetried(const std::string& peer, TimePoint now);

  Verdicts Tick(TimePoint now);
  // The caller could not listen for `gap` (its process was frozen, or its
  // loop stalled): silence during it proves nothing, so every clock moves on.
  void Shift(Duration gap);

  bool IsSuspect(const std::string& peer) const;
  TimePoint LastHeard(const std::string& peer) const;

 private:
  struct PeerState {
    TimePoint last_heard;
    bool suspect = false;
    TimePoint deadline{};  // dead at this time if still suspect
    bool disconnected = false;
    int retries_since_disconnect = 0;
    bool probe_due = false;
    bool dead_now = false;
    bool declared_dead = false;  // given in a Tick's dead list: never again until Track
  };
  Options options_;
  std::unordered_map<std::string, PeerState> peers_;
};

}  // namespace meshbus
