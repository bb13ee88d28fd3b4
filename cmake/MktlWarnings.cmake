# Warning and sanitizer flags shared by every target of the project.
add_library(mktl_warnings INTERFACE)
# GCC 12 raises false maybe-uninitialized and restrict warnings at -O2 (GCC bugs 105562, 105329).
# (clang, for the fuzz build, knows neither option.)
target_compile_options(mktl_warnings INTERFACE -Wall -Wextra $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized -Wno-restrict>)
# In a unity build each source is an included file to GCC, which then takes
# a class a .cpp defines for one of a header and warns when it uses a type of
# the file's anonymous namespace (-Wsubobject-linkage): true of no header here.
if(CMAKE_UNITY_BUILD)
  target_compile_options(mktl_warnings INTERFACE $<$<CXX_COMPILER_ID:GNU>:-Wno-subobject-linkage>)
endif()
if(MKTL_WERROR)
  target_compile_options(mktl_warnings INTERFACE -Werror)
endif()
if(MKTL_SANITIZE)
  # GCC leaves float-cast-overflow out of "undefined" (clang, for the fuzz
  # targets, does not): a double cast to an integer it does not fit is UB.
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
    $<$<CXX_COMPILER_ID:GNU>:-fsanitize=float-cast-overflow>)
  add_link_options(-fsanitize=address,undefined $<$<CXX_COMPILER_ID:GNU>:-fsanitize=float-cast-overflow>)
endif()
