// Tests of broker/raft_storage.h: round trips through a reopen, truncation,
// compaction (and a crash in the middle of it), torn tails cut at reopen and
// corruption reported. Each test works in its own directory under /tmp.

#include "broker/raft_storage.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace meshbus::raft {
namespace {

namespace fs = std::filesystem;

// Every entry's data is 8 bytes, so every record is 32: header 28, then
// entry i (after a snapshot at 0) at 28 + 32 * (i - 1).
constexpr size_t kLogHeader = 28;
constexpr size_t kRecord = 32;

Entry E(uint64_t index, uint64_t term) {
  return Entry{term, index, std::string(8, static_cast<char>('a' + index % 26))};
}

std::vector<Entry> Range(uint64_t first, uint64_t last, uint64_t term) {
  std::vector<Entry> out;
  for (uint64_t i = first; i <= last; ++i) out.push_back(E(i, term));
  return out;
}

class RaftStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/raft_storage_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<RaftStorage> Open(RaftStorage::Recovered* recovered) {
    Result<std::unique_ptr<RaftStorage>> s = RaftStorage::Open(dir_, recovered);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  // Opens, and expects what it recovers.
  void ExpectRecovered(const DurableState& want, bool warned = false) {
    RaftStorage::Recovered rec;
    std::unique_ptr<RaftStorage> s = Open(&rec);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(rec.state.hard_state, want.hard_state);
    EXPECT_EQ(rec.state.snapshot, want.snapshot);
    EXPECT_EQ(rec.state.entries, want.entries);
    EXPECT_EQ(!rec.warning.empty(), warned) << rec.warning;
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void Write(const std::string& name, const std::string& contents) const {
    std::ofstream out(Path(name), std::ios::binary | std::ios::trunc);
    out << contents;
  }
  void Edit(const std::string& name, const std::function<void(std::string*)>& f) const {
    std::string contents = Read(name);
    f(&contents);
    Write(name, contents);
  }

  std::string dir_;
};

TEST(Crc32cTest, KnownAnswers) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62a8ab43u);
}

TEST_F(RaftStorageTest, AFreshDirectoryIsAnEmptyNode) {
  const std::string data_dir = dir_ + "/data";  // not there yet: created
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "created" : "reopened");
    RaftStorage::Recovered rec;
    Result<std::unique_ptr<RaftStorage>> s = RaftStorage::Open(data_dir, &rec);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(rec.state.hard_state, HardState{});
    EXPECT_EQ(rec.state.snapshot, Snapshot{});
    EXPECT_TRUE(rec.state.entries.empty());
    EXPECT_TRUE(rec.warning.empty());
    EXPECT_EQ((*s)->first_index(), 1u);
    EXPECT_EQ((*s)->last_index(), 0u);
    EXPECT_TRUE(fs::exists(data_dir + "/raft-log"));
  }
}

TEST_F(RaftStorageTest, AnUnusableDirectoryIsAnError) {
  RaftStorage::Recovered rec;
  Write("file", "not a directory");
  Result<std::unique_ptr<RaftStorage>> s = RaftStorage::Open(Path("file") + "/data", &rec);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable) << s.status().ToString();
}

TEST_F(RaftStorageTest, WhatIsSavedComesBack) {
  RaftStorage::Recovered rec;
  std::unique_ptr<RaftStorage> s = Open(&rec);
  std::vector<Entry> entries = Range(1, 5, 1);
  entries.push_back(Entry{2, 6, ""});                          // a no-op
  entries.push_back(Entry{2, 7, std::string("a\0b\xff", 4)});  // binary data
  entries.push_back(Entry{2, 8, std::string(100000, 'x')});    // a big one
  ASSERT_TRUE(s->Append(entries).ok());
  ASSERT_TRUE(s->SaveHardState(HardState{2, "n2", 7}).ok());
  ASSERT_TRUE(s->SaveHardState(HardState{3, "", 8}).ok());  // replaced whole
  s.reset();
  ExpectRecovered(DurableState{{3, "", 8}, {}, entries});
}

// Save(Ready) writes the snapshot, then the entries, then the hard state.
TEST_F(RaftStorageTest, SaveWritesAReady) {
  RaftStorage::Recovered rec;
  std::unique_ptr<RaftStorage> s = Open(&rec);
  ASSERT_TRUE(s->Append(Range(1, 3, 1)).ok());
  Ready rd;
  rd.snapshot = Snapshot{10, 2, "state@10"};  // from the leader: the log goes
  rd.entries = Range(11, 12, 2);
  rd.hard_state = HardState{2, "n1", 10};
  ASSERT_TRUE(s->Save(rd).ok());
  s.reset();
  ExpectRecovered(DurableState{{2, "n1", 10}, {10, 2, "state@10"}, Range(11, 12, 2)});
}

// The log holds 1..5 of term 1; then an Append.
TEST_F(RaftStorageTest, AppendTable) {
  const struct {
    const char* label;
    std::vector<Entry> append;
    Code want;
    std::vector<Entry> log_after;
  } kCases[] = {
      {"right after the last", Range(6, 7, 1), Code::kOk, Range(1, 7, 1)},
      {"overwriting from the middle",
       Range(3, 4, 2),
       Code::kOk,
       {E(1, 1), E(2, 1), E(3, 2), E(4, 2)}},
      {"overwriting the last",
       Range(5, 5, 2),
       Code::kOk,
       {E(1, 1), E(2, 1), E(3, 1), E(4, 1), E(5, 2)}},
      {"overwriting everything", Range(1, 2, 3), Code::kOk, Range(1, 2, 3)},
      {"nothing", {}, Code::kOk, Range(1, 5, 1)},
      {"a gap", Range(7, 8, 1), Code::kInvalidArgument, Range(1, 5, 1)},
      {"index 0", {E(0, 1)}, Code::kInvalidArgument, Range(1, 5, 1)},
      {"out of sequence", {E(6, 1), E(8, 1)}, Code::kInvalidArgument, Range(1, 5, 1)},
      {"a term going back", {E(6, 1), E(7, 0)}, Code::kInvalidArgument, Range(1, 5, 1)},
      {"a term below the one before", {E(3, 0)}, Code::kInvalidArgument, Range(1, 5, 1)},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.label);
    fs::remove_all(dir_);
    RaftStorage::Recovered rec;
    std::unique_ptr<RaftStorage> s = Open(&rec);
    ASSERT_TRUE(s->Append(Range(1, 5, 1)).ok());
    EXPECT_EQ(s->Append(c.append).code(), c.want);
    // A refused call leaves the storage usable.
    ASSERT_TRUE(s->SaveHardState(HardState{3, "", 0}).ok());
    s.reset();
    ExpectRecovered(DurableState{{3, "", 0}, {}, c.log_after});
  }
}

// After a truncation the cut is durable: the old records do not come back.
TEST_F(RaftStorageTest, TruncationShrinksTheFile) {
  RaftStorage::Recovered rec;
  std::unique_ptr<RaftStorage> s = Open(&rec);
  ASSERT_TRUE(s->Append(Range(1, 10, 1)).ok());
  EXPECT_EQ(fs::file_size(Path("raft-log")), kLogHeader + 10 * kRecord);
  ASSERT_TRUE(s->Append(Range(4, 4, 2)).ok());
  EXPECT_EQ(fs::file_size(Path("raft-log")), kLogHeader + 4 * kRecord);
  EXPECT_EQ(s->last_index(), 4u);
}

TEST_F(RaftStorageTest, ASnapshotCompactsTheLog) {
  RaftStorage::Recovered rec;
  std::unique_ptr<RaftStorage> s = Open(&rec);
  ASSERT_TRUE(s->Append(Range(1, 10, 1)).ok());
  ASSERT_TRUE(s->SaveSnapshot(Snapshot{6, 1, "state@6"}).ok());
  EXPECT_EQ(s->first_index(), 7u);
  EXPECT_EQ(s->last_index(), 10u);
  EXPECT_EQ(fs::file_size(Path("raft-log")), kLogHeader + 4 * kRecord);
  EXPECT_EQ(s->SaveSnapshot(Snapshot{6, 1, "again"}).code(), Code::kInvalidArgument);
  EXPECT_EQ(s->SaveSnapshot(Snapshot{3, 1, "older"}).code(), Code::kInvalidArgument);
  EXPECT_EQ(s->Append(Range(5, 6, 1)).code(), Code::kInvalidArgument) << "compacted away";
  ASSERT_TRUE(s->Append(Range(11, 12, 1)).ok());
  s.reset();
  ExpectRecovered(DurableState{{}, {6, 1, "state@6"}, Range(7, 12, 1)});
}

// A snapshot whose entry the log does not hold (a leader's, for a follower
// that diverged or lags) replaces the whole log.
TEST_F(RaftStorageTest, ASnapshotTheLogDoesNotHoldReplacesIt) {
  const struct {
    const char* label;
    Snapshot snapshot;
  } kCases[] = {
      {"a different term at its index", {8, 2, "leader's"}},
      {"beyond the log", {20, 2, "far ahead"}},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.label);
    fs::remove_all(dir_);
    RaftStorage::Recovered rec;
    std::unique_ptr<RaftStorage> s = Open(&rec);
    ASSERT_TRUE(s->Append(Range(1, 10, 1)).ok());
    ASSERT_TRUE(s->SaveSnapshot(c.snapshot).ok());
    EXPECT_EQ(s->last_index(), c.snapshot.index);
    ASSERT_TRUE(s->Append({E(c.snapshot.index + 1, 2)}).ok());
    s.reset();
    ExpectRecovered(DurableState{{}, c.snapshot, {E(c.snapshot.index + 1, 2)}});
  }
}

// A crash after the snapshot was written but before the log was rewritten:
// Open finishes the job.
TEST_F(RaftStorageTest, ACompactionInterruptedByACrashIsCompleted) {
  const struct {
    const char* label;
    Snapshot snapshot;
    std::vector<Entry> kept;
  } kCases[] = {
      {"the log holds the snapshot's entry", {6, 1, "state@6"}, Range(7, 10, 1)},
      {"it does not", {8, 2, "leader's"}, {}},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.label);
    fs::remove_all(dir_);
    RaftStorage::Recovered rec;
    std::unique_ptr<RaftStorage> s = Open(&rec);
    ASSERT_TRUE(s->Append(Range(1, 10, 1)).ok());
    std::string old_log = Read("raft-log");
    ASSERT_TRUE(s->SaveSnapshot(c.snapshot).ok());
    s.reset();
    Write("raft-log", old_log);
    ExpectRecovered(DurableState{{}, c.snapshot, c.kept}, /*warned=*/true);
    ExpectRecovered(DurableState{{}, c.snapshot, c.kept});  // done once and for all
  }
}

// Entries 1..5 written; then the end of the file is damaged the way a crash
// in the middle of a write leaves it. What is whole survives.
TEST_F(RaftStorageTest, ATornTailIsCutTable) {
  const size_t fifth = kLogHeader + 4 * kRecord;
  const struct {
    const char* label;
    std::function<void(std::string*)> damage;
    uint64_t survivors;
  } kCases[] = {
      {"the last record cut short", [](std::string* f) { f->resize(f->size() - 3); }, 4},
      {"only part of its header", [fifth](std::string* f) { f->resize(fifth + 5); }, 4},
      {"zeros after the last record", [](std::string* f) { f->append(100, '\0'); }, 5},
      {"the last record zeroed",
       [fifth](std::string* f) { f->replace(fifth, kRecord, kRecord, '\0'); }, 4},
      {"the last record's data never written",
       [fifth](std::string* f) { f->replace(fifth + 24, 8, 8, '\0'); }, 4},
      {"a flipped byte in the last record", [](std::string* f) { f->back() ^= 1; }, 4},
      {"zeros after a flipped byte",
       [](std::string* f) {
         f->back() ^= 1;
         f->append(64, '\0');
       },
       4},
      {"half a record of garbage after the last",
       [](std::string* f) { f->append("\x20\0\0\0abc", 7); }, 5},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.label);
    fs::remove_all(dir_);
    RaftStorage::Recovered rec;
    std::unique_ptr<RaftStorage> s = Open(&rec);
    ASSERT_TRUE(s->Append(Range(1, 5, 1)).ok());
    ASSERT_TRUE(s->SaveHardState(HardState{1, "n1", 3}).ok());
    s.reset();
    Edit("raft-log", c.damage);
    ExpectRecovered(DurableState{{1, "n1", 3}, {}, Range(1, c.survivors, 1)}, /*warned=*/true);
    // The cut is for good: the next Open has nothing to say, and appends follow on.
    EXPECT_EQ(fs::file_size(Path("raft-log")), kLogHeader + c.survivors * kRecord);
    s = Open(&rec);
    EXPECT_TRUE(rec.warning.empty()) << rec.warning;
    ASSERT_TRUE(s->Append({E(c.survivors + 1, 2)}).ok());
    s.reset();
    std::vector<Entry> want = Range(1, c.survivors, 1);
    want.push_back(E(c.survivors + 1, 2));
    ExpectRecovered(DurableState{{1, "n1", 3}, {}, want});
  }
}

// Damage with whole records after it is not a torn write: Open refuses.
TEST_F(RaftStorageTest, CorruptionIsReportedTable) {
  const size_t second = kLogHeader + kRecord;
  const struct {
    const char* label;
    std::string file;
    std::function<void(std::string*)> damage;
  } kCases[] = {
      {"a flipped byte in a middle record", "raft-log",
       [second](std::string* f) { (*f)[second + 20] ^= 1; }},
      {"a nonsense length in a middle record", "raft-log",
       [second](std::string* f) { (*f)[second + 3] = '\x7f'; }},
      {"a zero length in a middle record", "raft-log",
       [second](std::string* f) { f->replace(second, 4, 4, '\0'); }},
      {"the log header", "raft-log", [](std::string* f) { (*f)[9] ^= 1; }},
      {"a log shorter than its header", "raft-log", [](std::string* f) { f->resize(10); }},
      {"the hard state", "raft-hardstate", [](std::string* f) { f->back() ^= 1; }},
      {"the hard state cut short", "raft-hardstate", [](std::string* f) { f->pop_back(); }},
      {"the snapshot", "raft-snapshot", [](std::string* f) { (*f)[14] ^= 1; }},
      {"a log deleted", "raft-log", nullptr},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.label);
    fs::remove_all(dir_);
    RaftStorage::Recovered rec;
    std::unique_ptr<RaftStorage> s = Open(&rec);
    ASSERT_TRUE(s->Append(Range(1, 5, 1)).ok());
    ASSERT_TRUE(s->SaveSnapshot(Snapshot{1, 1, "state@1"}).ok());
    ASSERT_TRUE(s->SaveHardState(HardState{1, "n1", 3}).ok());
    s.reset();
    if (c.damage) {
      Edit(c.file, c.damage);
    } else {
      fs::remove(Path(c.file));
    }
    Result<std::unique_ptr<RaftStorage>> r = RaftStorage::Open(dir_, &rec);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInternal) << r.status().ToString();
    EXPECT_NE(r.status().message().find("corrupt"), std::string::npos) << r.status().ToString();
  }
}

// A crash in the middle of an atomic replace leaves a temporary file: the
// replaced file stands, and the leftover goes.
TEST_F(RaftStorageTest, LeftoverTemporaryFilesAreIgnored) {
  RaftStorage::Recovered rec;
  std::unique_ptr<RaftStorage> s = Open(&rec);
  ASSERT_TRUE(s->SaveHardState(HardState{4, "n3", 0}).ok());
  s.reset();
  Write("raft-hardstate.tmp", "half a hard st");
  Write("raft-log.tmp", "garbage");
  ExpectRecovered(DurableState{{4, "n3", 0}, {}, {}});
  EXPECT_FALSE(fs::exists(Path("raft-hardstate.tmp")));
  EXPECT_FALSE(fs::exists(Path("raft-log.tmp")));
}

}  // namespace
}  // namespace meshbus::raft
