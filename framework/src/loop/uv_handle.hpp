#pragma once

#include <uv.h>

#include <utility>

namespace idemq::detail {

// Owns one libuv handle. libuv may still touch a handle after uv_close()
// returns, so the handle lives on the heap and is freed only in the close
// callback; the owner may go away at once.
template <class T>
class UvHandle final {
public:
    UvHandle() : handle_(new T{}) {}
    ~UvHandle() { close(); }
    UvHandle(const UvHandle&) = delete;
    UvHandle& operator=(const UvHandle&) = delete;

    // Call once libuv's init for the handle succeeded: from then on it must be
    // closed rather than deleted.
    void mark_initialized() noexcept { initialized_ = true; }

    [[nodiscard]] T* get() const noexcept { return handle_; }

    void close() noexcept {
        if (handle_ == nullptr) return;
        T* handle = std::exchange(handle_, nullptr);
        if (!initialized_) {
            delete handle;
            return;
        }
        auto* base = reinterpret_cast<uv_handle_t*>(handle);
        if (uv_is_closing(base) != 0) return;
        uv_close(base, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
    }

private:
    T* handle_;
    bool initialized_ = false;
};

}  // namespace idemq::detail
