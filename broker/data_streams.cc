#include "broker/data_streams.h"

namespace meshbus {

void OutboundStreams::Subscribed(const std::string& prefix) {
  auto it = streams_.find(prefix);
  if (it == streams_.end()) {
    if (streams_.size() >= max_streams_) {
      // Forget the streams nobody subscribes to now; if that is not enough,
      // forget them all and start a new epoch.
      std::erase_if(streams_, [](const auto& kv) { return !kv.second.subscribed; });
      if (streams_.size() >= max_streams_) {
        streams_.clear();
        lengths_.clear();
        marking_.clear();
        ++epoch_;
      }
    }
    it = streams_.emplace(prefix, Stream{}).first;
  }
  if (it->second.subscribed) return;
  it->second.subscribed = true;
  ++lengths_[prefix.size()];
}

void OutboundStreams::Unsubscribed(const std::string& prefix) {
  auto it = streams_.find(prefix);
  if (it == streams_.end() || !it->second.subscribed) return;
  it->second.subscribed = false;
  auto len = lengths_.find(prefix.size());
  if (--len->second == 0) lengths_.erase(len);
}

bool OutboundStreams::subscribed(const std::string& prefix) const {
  auto it = streams_.find(prefix);
  return it != streams_.end() && it->second.subscribed;
}

void OutboundStreams::Next(std::string_view data_topic,
                           std::vector<std::pair<std::string, uint64_t>>* out) {
  out->clear();
  std::string key;
  for (const auto& [len, count] : lengths_) {
    if (len > data_topic.size()) break;
    key.assign(data_topic.substr(0, len));
    auto it = streams_.find(key);
    if (it == streams_.end() || !it->second.subscribed) continue;
    Stream& s = it->second;
    if (s.marks_due == 0) marking_.push_back(key);
    s.marks_due = kMarkRounds;
    out->emplace_back(len == data_topic.size() ? std::string() : key, ++s.seq);
  }
}

std::vector<std::pair<std::string, uint64_t>> OutboundStreams::TakeMarks(size_t max) {
  std::vector<std::pair<std::string, uint64_t>> marks;
  for (size_t n = marking_.size(); n > 0 && marks.size() < max; --n) {
    std::string prefix = std::move(marking_.front());
    marking_.pop_front();
    auto it = streams_.find(prefix);
    if (it == streams_.end() || it->second.marks_due == 0) continue;
    marks.emplace_back(prefix, it->second.seq);
    if (--it->second.marks_due > 0) marking_.push_back(std::move(prefix));
  }
  return marks;
}

InboundStreams::Origin& InboundStreams::At(const std::string& origin, uint64_t epoch) {
  Origin& o = origins_[origin];
  if (o.epoch != epoch) {
    o.epoch = epoch;
    o.last.clear();
  }
  return o;
}

uint64_t* InboundStreams::Last(const std::string& origin, uint64_t epoch, const std::string& stream,
                               uint64_t seq) {
  Origin& o = At(origin, epoch);
  auto it = o.last.find(stream);
  if (it != o.last.end()) return &it->second;
  if (o.last.size() >= max_topics_) o.last.clear();
  o.last.emplace(stream, seq);
  return nullptr;
}

InboundStreams::Verdict InboundStreams::OnData(const std::string& origin, uint64_t epoch,
                                               const std::string& stream, uint64_t first,
                                               uint64_t count) {
  // The origin never numbers past 2^64, so first + count - 1 does not wrap.
  const uint64_t end = first + (count - 1);
  uint64_t* last = Last(origin, epoch, stream, end);
  if (last == nullptr) return {};
  if (end <= *last) return {count, 0};
  if (first <= *last) {
    uint64_t seen = *last - first + 1;
    *last = end;
    return {seen, 0};
  }
  uint64_t lost = first - *last - 1;
  *last = end;
  return {0, lost};
}

uint64_t InboundStreams::OnMark(const std::string& origin, uint64_t epoch,
                                const std::string& stream, uint64_t seq) {
  uint64_t* last = Last(origin, epoch, stream, seq);
  if (last == nullptr || seq <= *last) return 0;
  uint64_t lost = seq - *last;
  *last = seq;
  return lost;
}

void InboundStreams::ForgetUnless(
    const std::function<bool(const std::string& data_topic)>& still_wanted) {
  for (auto& [origin, o] : origins_) {
    for (auto it = o.last.begin(); it != o.last.end();) {
      it = still_wanted(it->first) ? std::next(it) : o.last.erase(it);
    }
  }
}

size_t InboundStreams::stream_count() const {
  size_t n = 0;
  for (const auto& [origin, o] : origins_) n += o.last.size();
  return n;
}

}  // namespace meshbus
