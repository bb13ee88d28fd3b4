# Man pages made by help2man from the programs' own --help at build time, so
# that the page and --help never drift apart. docs/man/*.h2m add the sections
# --help does not have.
option(MKTL_BUILD_MAN "Generate and install the man pages (needs help2man)" ON)
if(MKTL_BUILD_MAN)
  find_program(HELP2MAN help2man)
  if(NOT HELP2MAN)
    message(FATAL_ERROR "help2man not found: install it (scripts/deps.sh does) or configure with -DMKTL_BUILD_MAN=OFF")
  endif()
endif()

# mktl_man_page(TARGET "one-line description"): TARGET.1 from `TARGET --help`,
# installed in section 1.
function(mktl_man_page target description)
  if(NOT MKTL_BUILD_MAN)
    return()
  endif()
  set(page ${CMAKE_CURRENT_BINARY_DIR}/${target}.1)
  set(include ${PROJECT_SOURCE_DIR}/docs/man/common.h2m)
  set(filter ${PROJECT_SOURCE_DIR}/cmake/help2man-input.sh)
  # help2man runs "PROGRAM --help" through the shell: PROGRAM is the filter
  # that adapts our headings to what help2man recognises.
  add_custom_command(OUTPUT ${page}
    COMMAND ${HELP2MAN} --no-info --section 1 --name ${description}
            --version-string "${target} (mktl) ${PROJECT_VERSION}" --include ${include}
            --output ${page} "sh '${filter}' '$<TARGET_FILE:${target}>'"
    DEPENDS ${target} ${include} ${filter}
    COMMENT "Generating ${target}.1 from ${target} --help"
    VERBATIM)
  add_custom_target(${target}_man ALL DEPENDS ${page})
  install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endfunction()
