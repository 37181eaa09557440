# idemq_embed_migrations(<target> COMPONENT <name> FUNCTION <qualified::name> FILES <NNNN_name.sql>...)
#
# Compiles SQL migration files into <target> as a function returning
# std::vector<idemq::Migration>, so a deployed binary carries its own schema and
# never depends on files next to it. The version is the file's numeric prefix.
set(IDEMQ_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_migrations_script.cmake)

function(idemq_embed_migrations target)
  cmake_parse_arguments(arg "" "COMPONENT;FUNCTION" "FILES" ${ARGN})
  if(NOT arg_COMPONENT OR NOT arg_FUNCTION OR NOT arg_FILES)
    message(FATAL_ERROR "idemq_embed_migrations: COMPONENT, FUNCTION and FILES are required")
  endif()
  set(abs_files "")
  foreach(file IN LISTS arg_FILES)
    get_filename_component(abs "${file}" ABSOLUTE)
    list(APPEND abs_files "${abs}")
  endforeach()
  string(MAKE_C_IDENTIFIER "${arg_COMPONENT}" id)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${id}_migrations.cpp")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} "-DOUT=${out}" "-DCOMPONENT=${arg_COMPONENT}"
            "-DFUNCTION=${arg_FUNCTION}" "-DFILES=${abs_files}" -P "${IDEMQ_EMBED_SCRIPT}"
    DEPENDS ${abs_files} "${IDEMQ_EMBED_SCRIPT}"
    COMMENT "Embedding ${arg_COMPONENT} migrations"
    VERBATIM)
  target_sources(${target} PRIVATE "${out}")
endfunction()
