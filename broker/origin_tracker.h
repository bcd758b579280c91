// OriginTracker: how far one broker has followed another broker's stream of
// membership deltas, and what to do with the next one. Pure; not thread-safe
// (owned by the broker's loop thread).
//
// Each origin numbers its deltas 1, 2, 3, ...; a snapshot carries the number
// of the last delta it includes. Deltas arrive on PUB/SUB, which may lose
// messages (slow joiner, a dropped connection, a full queue), so a receiver
// that sees a number jump, or a heartbeat announcing a later number than it
// has, asks the origin for a snapshot. Deltas that arrive while the snapshot
// is on its way are kept and applied after it, in order, so a busy origin
// does not trigger resync after resync.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

#include "topics/wire.h"

namespace meshbus {

class OriginTracker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // Deltas buffered during a resync, at most; beyond it the oldest are
  // dropped, and the gap they leave is found and resynced again.
  static constexpr size_t kMaxBuffered = 100'000;

  enum class Verdict {
    kApply,   // next in sequence: apply it now
    kIgnore,  // already covered (duplicate or older than our snapshot)
    kBuffer,  // a resync is under way: kept for after the snapshot
    kResync,  // a gap: kept, and the caller must request a snapshot now
  };

  // Starts following from a snapshot taken at `seq`.
  explicit OriginTracker(uint64_t seq = 0) : applied_(seq) {}

  Verdict OnDelta(const wire::PeerDelta& delta, TimePoint now);
  // True when the heartbeat shows deltas we have not seen: request a snapshot.
  bool OnHeartbeat(uint64_t seq, TimePoint now);
  // True when a snapshot taken at `seq` is older than what we already applied
  // (an answer overtaken by deltas): it must be ignored.
  bool IsStale(uint64_t seq) const { return seq < applied_; }
  // A snapshot arrived (and is not stale). Returns the buffered deltas that follow it, in order,
  // for the caller to apply. If they do not follow it without a gap, the
  // tracker stays in resync and *resync_again is set.
  std::deque<wire::PeerDelta> OnSnapshot(uint64_t seq, TimePoint now, bool* resync_again);
  // Begins a resync on request (e.g. forced by an operator or a test).
  void StartResync(TimePoint now);
  // A resync whose snapshot has not come after `timeout`: ask again.
  bool ResyncOverdue(TimePoint now, std::chrono::milliseconds timeout) const;
  void MarkResyncRequested(TimePoint now) { resync_requested_at_ = now; }

  bool resyncing() const { return resyncing_; }
  uint64_t applied() const { return applied_; }
  uint64_t dropped_from_buffer() const { return dropped_; }

 private:
  uint64_t applied_;
  bool resyncing_ = false;
  TimePoint resync_requested_at_{};
  std::deque<wire::PeerDelta> buffer_;
  uint64_t dropped_ = 0;

  void Keep(const wire::PeerDelta& delta);
};

}  // namespace meshbus
