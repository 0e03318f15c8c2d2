# Every third-party dependency, found once. All of them are Debian packages installed by
# scripts/setup.sh.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED COMPONENTS system json url)
find_package(fmt 9 REQUIRED)
find_package(spdlog 1.10 REQUIRED)
find_package(yaml-cpp 0.7 REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBNL REQUIRED IMPORTED_TARGET libnl-3.0>=3.7 libnl-route-3.0>=3.7)
pkg_check_modules(LIBNFTNL REQUIRED IMPORTED_TARGET libnftnl>=1.2 libmnl>=1.0)
pkg_check_modules(LIBISOFS REQUIRED IMPORTED_TARGET libisofs-1>=1.5)

# Boost.Asio: no deprecated interfaces, coroutines on.
add_library(berth_asio INTERFACE)
target_link_libraries(berth_asio INTERFACE Boost::headers Boost::system Threads::Threads)
target_compile_definitions(berth_asio INTERFACE BOOST_ASIO_NO_DEPRECATED BOOST_ASIO_DISABLE_BOOST_COROUTINE)
