// RaftStorage: the durable state of one Raft node (broker/raft.h) in a
// directory, the broker's --data-dir: its hard state, its latest snapshot and
// the log entries after it. Blocking file I/O; every call that returns ok has
// fsync'd what it wrote. Not thread-safe (owned by the broker's loop thread).
//
// Files (little-endian, each record checked by a CRC-32C):
//   raft-hardstate  term, vote and commit. Replaced atomically: written to a
//                   temporary file, fsync'd, renamed, and the directory fsync'd.
//   raft-snapshot   the latest snapshot, replaced the same way.
//   raft-log        a header naming the entry the log continues from (the
//                   snapshot's index and term), then one record per entry:
//                   [u32 length][u32 crc32c][u64 index][u64 term][data].
//                   Appended, and fsync'd once per batch. A truncation cuts the
//                   file at the offset of the first entry removed; a
//                   compaction rewrites it (temporary file, rename).
//
// Recovery (Open): a missing raft-log next to a hard state or snapshot is an
// error (acknowledged entries would be lost). A torn record at the end of raft-log (a write cut
// short by a crash: a short record, or one whose CRC fails with only zeros or nothing after it) is
// cut off, and reported in Recovered::warning. A record that fails its check with valid data after
// it is corruption: Open fails. A crash between writing a snapshot and rewriting the log is
// completed at Open.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "broker/raft.h"
#include "topics/status.h"

namespace meshbus::raft {

// CRC-32C (Castagnoli), as in iSCSI and ext4: Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::string_view data);

class RaftStorage {
 public:
  struct Recovered {
    DurableState state;
    std::string warning;  // non-empty: something was repaired; worth a log line
  };

  // Opens the storage in `dir`, creating the directory (one level) and the
  // files of a fresh node if they are missing, and recovers what is there.
  static Result<std::unique_ptr<RaftStorage>> Open(const std::string& dir, Recovered* recovered);
  ~RaftStorage();
  RaftStorage(const RaftStorage&) = delete;
  RaftStorage& operator=(const RaftStorage&) = delete;

  // Persists what a Ready asks, in the order that survives a crash anywhere:
  // the snapshot, then the entries, then the hard state.
  Status Save(const Ready& ready);
  Status SaveHardState(const HardState& hard_state);
  // Appends entries, first removing the stored ones at or after
  // entries.front().index. They must follow on from the log (no gap).
  Status Append(const std::vector<Entry>& entries);
  // Replaces the snapshot, and compacts the log: the entries after it are
  // kept if the log holds the snapshot's own entry, and all are dropped
  // otherwise (a snapshot from the leader replacing a divergent log).
  Status SaveSnapshot(const Snapshot& snapshot);

  uint64_t first_index() const { return base_index_ + 1; }
  uint64_t last_index() const { return base_index_ + terms_.size(); }
  uint64_t snapshot_index() const { return snapshot_index_; }
  uint64_t log_file_size() const { return end_offset_; }

 private:
  explicit RaftStorage(std::string dir) : dir_(std::move(dir)) {}

  Status LoadHardState(HardState* out, bool* exists) const;
  Status LoadSnapshot(Snapshot* out, bool* exists) const;
  Status LoadLog(const Snapshot& snapshot, bool has_state, std::vector<Entry>* entries,
                 std::string* warning);
  Status ParseLog(const std::string& file, std::vector<Entry>* entries, std::string* warning);
  Status RewriteLog(uint64_t base_index, uint64_t base_term, uint64_t keep_from);
  Status OpenLogForAppend();
  Status Fail(Status status);
  std::string PathOf(std::string_view name) const;

  std::string dir_;
  int log_fd_ = -1;
  uint64_t snapshot_index_ = 0;
  // The log file: the entry it continues from, each entry's record offset and term.
  uint64_t base_index_ = 0;
  uint64_t base_term_ = 0;
  std::vector<uint64_t> offsets_;
  std::vector<uint64_t> terms_;
  uint64_t end_offset_ = 0;
  // After a failed write or fsync the file's state is unknown (and a later
  // fsync may falsely succeed): refuse everything until reopened.
  Status failed_;
};

}  // namespace meshbus::raft
