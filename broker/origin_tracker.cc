#include "broker/origin_tracker.h"

namespace meshbus {

void OriginTracker::Keep(const wire::PeerDelta& delta) {
  if (!buffer_.empty() && delta.seq <= buffer_.back().seq) return;  // duplicate
  buffer_.push_back(delta);
  if (buffer_.size() > kMaxBuffered) {
    buffer_.pop_front();
    ++dropped_;
  }
}

OriginTracker::Verdict OriginTracker::OnDelta(const wire::PeerDelta& delta, TimePoint now) {
  if (delta.seq <= applied_) return Verdict::kIgnore;
  if (resyncing_) {
    Keep(delta);
    return Verdict::kBuffer;
  }
  if (delta.seq == applied_ + 1) {
    applied_ = delta.seq;
    return Verdict::kApply;
  }
  StartResync(now);
  Keep(delta);
  return Verdict::kResync;
}

bool OriginTracker::OnHeartbeat(uint64_t seq, TimePoint now) {
  if (resyncing_ || seq <= applied_) return false;
  // Deltas up to `seq` may still be buffered in flight behind the heartbeat on
  // another socket; but heartbeat and deltas share the control channel, which
  // is ordered per sender, so a higher number here means they were lost.
  StartResync(now);
  return true;
}

void OriginTracker::StartResync(TimePoint now) {
  resyncing_ = true;
  resync_requested_at_ = now;
}

bool OriginTracker::ResyncOverdue(TimePoint now, std::chrono::milliseconds timeout) const {
  return resyncing_ && now - resync_requested_at_ >= timeout;
}

std::deque<wire::PeerDelta> OriginTracker::OnSnapshot(uint64_t seq, TimePoint now,
                                                      bool* resync_again) {
  *resync_again = false;
  applied_ = seq;
  resyncing_ = false;
  std::deque<wire::PeerDelta> follow;
  while (!buffer_.empty()) {
    wire::PeerDelta d = std::move(buffer_.front());
    buffer_.pop_front();
    if (d.seq <= applied_) continue;
    if (d.seq != applied_ + 1) {
      // Lost between the snapshot and what we kept: ask again.
      buffer_.push_front(std::move(d));
      StartResync(now);
      *resync_again = true;
      break;
    }
    applied_ = d.seq;
    follow.push_back(std::move(d));
  }
  return follow;
}

}  // namespace meshbus
