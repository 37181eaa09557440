# What `cmake --install` puts in a prefix: the three libraries and their
# public headers, idemqctl, and the package config that lets
# find_package(idemq CONFIG) give idemq::idemq, idemq::core, idemq::testing
# and idemq_embed_migrations() to applications built outside this tree.
# Included from the top level once every installed target exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(idemq_core PROPERTIES EXPORT_NAME core)
set_target_properties(idemq_app PROPERTIES EXPORT_NAME idemq)
set_target_properties(idemq_testing PROPERTIES EXPORT_NAME testing)
install(TARGETS idemq_core idemq_app idemq_testing EXPORT idemq-targets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/include/idemq DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS idemqctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(IDEMQ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/idemq)
install(EXPORT idemq-targets NAMESPACE idemq:: DESTINATION ${IDEMQ_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/idemq-config.cmake.in
  ${PROJECT_BINARY_DIR}/idemq-config.cmake INSTALL_DESTINATION ${IDEMQ_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/idemq-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/idemq-config.cmake ${PROJECT_BINARY_DIR}/idemq-config-version.cmake
              ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake
              ${PROJECT_SOURCE_DIR}/cmake/embed_migrations_script.cmake
        DESTINATION ${IDEMQ_CMAKE_DIR})
