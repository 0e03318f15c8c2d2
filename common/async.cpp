#include "common/async.hpp"

#include <boost/asio/thread_pool.hpp>

namespace berth {

boost::asio::any_io_executor blocking_executor() {
  // Two threads: one long fsync does not hold up a hash. Joined at exit.
  static boost::asio::thread_pool pool(2);
  return pool.get_executor();
}

}  // namespace berth
