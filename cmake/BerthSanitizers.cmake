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
  # -O1 -g1: line tables for the reports' stack traces and the optimisation level the sanitizers'
  # docs recommend, at a fraction of -O3 -g's compile time (scripts/test-sanitizers.sh configures
  # a Debug build, so assert() is live too; these come after its -g and win).
  target_compile_options(berth_sanitizers INTERFACE ${berth_sanitize_flags} -O1 -g1)
  # The sanitizers' instrumentation makes GCC's -Wmaybe-uninitialized report false positives
  # (the GCC manual says so; here in Boost.Beast's boost::optional at -O3); the main build keeps it.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # At -O1 GCC 12 also misreads Asio's coroutine frames (allocated by the frame's own operator
    # new) as -Wmismatched-new-delete.
    target_compile_options(berth_sanitizers INTERFACE -Wno-maybe-uninitialized
                           -Wno-mismatched-new-delete)
  endif()
  target_link_options(berth_sanitizers INTERFACE ${berth_sanitize_flags})
  message(STATUS "sanitizers: AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer on")
endif()
