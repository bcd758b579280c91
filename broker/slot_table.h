// SlotTable: values addressed by 64-bit ids, kept in slots that are reused,
// for state that is made and settled at a high rate (a broker's calls in
// flight). Once the table has grown to its peak, an insert or an erase
// allocates nothing, and a lookup is an index and one compare, not a hash.
// Not thread-safe: the broker's loop thread owns it.
//
// An id is never handed out twice (until 2^40 inserts): its low 24 bits name
// the slot and the rest is a sequence number, so an id that outlived its
// entry (a late ack from a peer) finds nothing even when its slot holds a
// newer one. A pointer from Find stays valid until that entry is erased:
// inserts do not move other entries. An emptied table gives its memory back
// once it holds more than kKeptWhenIdle slots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

namespace meshbus {

template <typename T>
class SlotTable {
 public:
  static constexpr int kSlotBits = 24;
  static constexpr size_t kMaxEntries = size_t{1} << kSlotBits;
  // Slots an emptied table keeps rather than freeing.
  static constexpr size_t kKeptWhenIdle = 4096;

  // A new entry, default-constructed, and its id; {0, nullptr} when the
  // table holds kMaxEntries already.
  std::pair<uint64_t, T*> Insert() {
    size_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else if (slots_.size() < kMaxEntries) {
      index = slots_.size();
      slots_.emplace_back();
    } else {
      return {0, nullptr};
    }
    Slot& s = slots_[index];
    s.id = (next_sequence_++ << kSlotBits) | index;
    if (next_sequence_ == uint64_t{1} << (64 - kSlotBits)) next_sequence_ = 1;
    ++size_;
    return {s.id, &s.value};
  }

  T* Find(uint64_t id) {
    const size_t index = id & (kMaxEntries - 1);
    if (id == 0 || index >= slots_.size() || slots_[index].id != id) return nullptr;
    return &slots_[index].value;
  }
  const T* Find(uint64_t id) const { return const_cast<SlotTable*>(this)->Find(id); }

  // Destroys the entry's value (what it holds is freed now, not when its
  // slot is reused); false when there is no such entry.
  bool Erase(uint64_t id) {
    if (Find(id) == nullptr) return false;
    Free(id & (kMaxEntries - 1));
    TrimIfEmpty();
    return true;
  }

  // Erases every entry for which pred(id, const T&) is true; how many.
  template <typename Pred>
  size_t EraseIf(Pred pred) {
    size_t erased = 0;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].id == 0 || !pred(slots_[i].id, std::as_const(slots_[i].value))) continue;
      Free(i);
      ++erased;
    }
    TrimIfEmpty();
    return erased;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The ids of every entry, in no set order (a copy: the caller may erase).
  std::vector<uint64_t> Ids() const {
    std::vector<uint64_t> out;
    out.reserve(size_);
    for (const Slot& s : slots_) {
      if (s.id != 0) out.push_back(s.id);
    }
    return out;
  }

 private:
  void Free(size_t index) {
    T& v = slots_[index].value;
    std::destroy_at(&v);  // (cheaper than assigning a new T)
    std::construct_at(&v);
    slots_[index].id = 0;
    free_.push_back(index);
    --size_;
  }
  void TrimIfEmpty() {
    // Idle after a peak: its memory goes back (the sequence goes on). A
    // small table is kept, or one that empties often would grow again.
    if (size_ > 0 || slots_.size() <= kKeptWhenIdle) return;
    slots_.clear();
    free_.clear();
  }

  struct Slot {
    uint64_t id = 0;  // 0: free
    T value{};
  };
  std::deque<Slot> slots_;
  std::vector<size_t> free_;
  size_t size_ = 0;
  uint64_t next_sequence_ = 1;  // 0 is no id
};

}  // namespace meshbus
