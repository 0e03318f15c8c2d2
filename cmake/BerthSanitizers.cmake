# BERTH_SANITIZE=ON builds every Berth target (the libraries, berth itself, every test program)
# with AddressSanitizer (LeakSanitizer included) and UndefinedBehaviorSanitizer. The first finding
# ends the program with a report and a non-zero status, so a sanitizer finding fails its test.
# scripts/test-sanitizers.sh builds this way into build-asan and runs the unit and root tiers.
# GCC's sanitizers suffice; clang is not needed. berth_common links berth_sanitizers PUBLIC, so
# every target that uses Berth's code is compiled and linked with the same flags.
option(BERTH_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)

add_library(berth_sanitizers INTERFACE)
if(BERTH_SANITIZE)
  set(berth_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=all
      -fno-omit-frame-pointer)
  # -g1: line tables for the reports' stack traces, at a fraction of -g's compile time.
  target_compile_options(berth_sanitizers INTERFACE ${berth_sanitize_flags} -g1)
  # The sanitizers' instrumentation makes GCC's -Wmaybe-uninitialized report false positives
  # (the GCC manual says so; here in Boost.Beast's boost::optional at -O3); the main build keeps it.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(berth_sanitizers INTERFACE -Wno-maybe-uninitialized)
  endif()
  target_link_options(berth_sanitizers INTERFACE ${berth_sanitize_flags})
  message(STATUS "sanitizers: AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer on")
endif()
