// MsgpackReader: reads the elements of one decoded msgpack array in order,
// checking each field's type and size, for every codec of meshbus (the wire
// formats, the registry's commands and snapshots). The first failure is
// recorded in a Status shared with nested readers; after it every read
// returns a default value, so callers check ok() once at the end (and inside
// loops, to stop early). Not thread-safe; a value used on one thread.
//
// Also the packing helpers the codecs share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "topics/names.h"
#include "topics/status.h"

namespace meshbus {

using MsgpackPacker = msgpack::packer<msgpack::sbuffer>;

inline void PackStr(MsgpackPacker& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}
// Opaque bytes are bin, not str (which means UTF-8).
inline void PackBin(MsgpackPacker& pk, std::string_view b) {
  pk.pack_bin(static_cast<uint32_t>(b.size()));
  pk.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
}
inline void PackBool(MsgpackPacker& pk, bool b) {
  b ? pk.pack_true() : pk.pack_false();
}

// Unpacks one msgpack object that must fill `bytes`, into `zone`, with
// bounded string sizes and depth, and no maps or exts. Every element takes at
// least one byte, so no array may claim more elements than there are bytes:
// a few bytes cannot make the unpacker reserve room for millions of objects.
inline Result<msgpack::object> UnpackBounded(std::string_view bytes, std::string_view what,
                                             msgpack::zone& zone, size_t max_string_bytes,
                                             size_t max_depth) {
  if (bytes.empty()) return Status::BadMessage(std::string(what) + " is empty");
  try {
    size_t off = 0;
    msgpack::unpack_limit limit(/*array=*/bytes.size(), /*map=*/0, max_string_bytes,
                                max_string_bytes, /*ext=*/0, max_depth);
    msgpack::object o =
        msgpack::unpack(zone, bytes.data(), bytes.size(), off, nullptr, nullptr, limit);
    if (off != bytes.size()) return Status::BadMessage(std::string(what) + " has trailing bytes");
    return o;
  } catch (const std::exception& e) {
    return Status::BadMessage(std::string(what) + " is not valid msgpack: " + e.what());
  }
}

class MsgpackReader {
 public:
  MsgpackReader(const msgpack::object* o, Status* st, std::string what)
      : st_(st), what_(std::move(what)) {
    if (o == nullptr || o->type != msgpack::type::ARRAY) {
      Fail("is not an array");
      return;
    }
    items_ = o->via.array.ptr;
    n_ = o->via.array.size;
  }
  bool ok() const { return st_->ok(); }
  size_t size() const { return n_; }
  bool has_more() const { return ok() && i_ < n_; }

  void Fail(const std::string& why) {
    if (st_->ok()) *st_ = Status::BadMessage(what_ + " " + why);
  }
  // For exact formats: extra elements are refused.
  void End() {
    if (ok() && i_ != n_) Fail("has " + std::to_string(n_ - i_) + " unexpected trailing fields");
  }

  const msgpack::object* Next(std::string_view field) {
    if (!ok()) return nullptr;
    if (i_ >= n_) {
      Fail("is missing field '" + std::string(field) + "'");
      return nullptr;
    }
    return &items_[i_++];
  }
  uint64_t U64(std::string_view field) {
    const msgpack::object* o = Next(field);
    if (o == nullptr) return 0;
    if (o->type != msgpack::type::POSITIVE_INTEGER) {
      Fail("field '" + std::string(field) + "' is not an unsigned integer");
      return 0;
    }
    return o->via.u64;
  }
  uint32_t U32(std::string_view field) {
    uint64_t v = U64(field);
    if (v > UINT32_MAX) Fail("field '" + std::string(field) + "' is out of range");
    return static_cast<uint32_t>(v);
  }
  int64_t I64(std::string_view field) {
    const msgpack::object* o = Next(field);
    if (o == nullptr) return 0;
    if (o->type == msgpack::type::NEGATIVE_INTEGER) return o->via.i64;
    if (o->type != msgpack::type::POSITIVE_INTEGER || o->via.u64 > uint64_t(INT64_MAX)) {
      Fail("field '" + std::string(field) + "' is not a 64-bit integer");
      return 0;
    }
    return static_cast<int64_t>(o->via.u64);
  }
  bool Bool(std::string_view field) {
    const msgpack::object* o = Next(field);
    if (o == nullptr) return false;
    if (o->type != msgpack::type::BOOLEAN) {
      Fail("field '" + std::string(field) + "' is not a boolean");
      return false;
    }
    return o->via.boolean;
  }
  bool PeekNil() const { return ok() && i_ < n_ && items_[i_].type == msgpack::type::NIL; }
  bool PeekArray() const { return ok() && i_ < n_ && items_[i_].type == msgpack::type::ARRAY; }
  std::string Str(std::string_view field, size_t max_bytes) {
    return Bytes(field, msgpack::type::STR, "a string", max_bytes);
  }
  std::string Bin(std::string_view field, size_t max_bytes) {
    return Bytes(field, msgpack::type::BIN, "binary", max_bytes);
  }
  // A string checked by one of the Validate* functions of names.h.
  std::string Checked(std::string_view field, Status (*validate)(std::string_view),
                      size_t max_bytes = 1u << 16) {
    std::string s = Str(field, max_bytes);
    if (!ok()) return s;
    Status v = validate(s);
    if (!v.ok()) Fail("field '" + std::string(field) + "': " + v.message());
    return s;
  }
  MemberId Member(std::string_view field, size_t max_bytes) {
    std::string text = Str(field, max_bytes);
    if (!ok()) return {};
    std::optional<MemberId> id = MemberId::Parse(text);
    if (!id) {
      Fail("field '" + std::string(field) + "' is a malformed member id '" + text + "'");
      return {};
    }
    return *id;
  }
  MsgpackReader Array(std::string_view field) {
    return MsgpackReader(Next(field), st_, what_ + "." + std::string(field));
  }

 private:
  std::string Bytes(std::string_view field, msgpack::type::object_type type, const char* type_name,
                    size_t max_bytes) {
    const msgpack::object* o = Next(field);
    if (o == nullptr) return {};
    if (o->type != type) {
      Fail("field '" + std::string(field) + "' is not " + type_name);
      return {};
    }
    bool str = type == msgpack::type::STR;
    uint32_t size = str ? o->via.str.size : o->via.bin.size;
    const char* ptr = str ? o->via.str.ptr : o->via.bin.ptr;
    if (size > max_bytes) {
      Fail("field '" + std::string(field) + "' is longer than " + std::to_string(max_bytes) +
           " bytes");
      return {};
    }
    return std::string(ptr, size);
  }

  Status* st_;
  std::string what_;
  const msgpack::object* items_ = nullptr;
  size_t n_ = 0;
  size_t i_ = 0;
};

}  // namespace meshbus
