#include "broker/data_streams.h"

namespace meshbus {

uint64_t OutboundStreams::Next(const std::string& data_topic) {
  auto it = streams_.find(data_topic);
  if (it == streams_.end()) {
    if (streams_.size() >= max_topics_) {
      streams_.clear();
      unmarked_.clear();
      ++epoch_;
    }
    it = streams_.emplace(data_topic, Stream{}).first;
  }
  Stream& s = it->second;
  if (s.marked) {
    s.marked = false;
    unmarked_.push_back(data_topic);
  }
  return ++s.seq;
}

std::vector<std::pair<std::string, uint64_t>> OutboundStreams::TakeMarks(size_t max) {
  std::vector<std::pair<std::string, uint64_t>> marks;
  size_t n = std::min(max, unmarked_.size());
  marks.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string& topic = unmarked_[unmarked_.size() - 1 - i];
    Stream& s = streams_.at(topic);
    s.marked = true;
    marks.emplace_back(std::move(topic), s.seq);
  }
  unmarked_.resize(unmarked_.size() - n);
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

InboundStreams::Verdict InboundStreams::OnData(const std::string& origin, uint64_t epoch,
                                               const std::string& data_topic, uint64_t seq) {
  Origin& o = At(origin, epoch);
  auto it = o.last.find(data_topic);
  if (it == o.last.end()) {
    // The first we see of this stream: what came before was not for us.
    if (o.last.size() >= max_topics_) o.last.clear();
    o.last.emplace(data_topic, seq);
    return {};
  }
  if (seq <= it->second) return {false, 0};
  uint64_t lost = seq - it->second - 1;
  it->second = seq;
  return {true, lost};
}

uint64_t InboundStreams::OnMark(const std::string& origin, uint64_t epoch,
                                const std::string& data_topic, uint64_t seq) {
  Origin& o = At(origin, epoch);
  auto it = o.last.find(data_topic);
  if (it == o.last.end()) {
    if (o.last.size() >= max_topics_) o.last.clear();
    o.last.emplace(data_topic, seq);
    return 0;
  }
  if (seq <= it->second) return 0;
  uint64_t lost = seq - it->second;
  it->second = seq;
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
