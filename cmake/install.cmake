# `make install` (cmake --install): the binaries, their man pages, the
# configuration, the example configuration and the systemd unit. The
# dashboard is inside the ferromq binary. GNUInstallDirs puts the
# configuration in /etc and the data in /var/lib when the prefix is /usr.
include(GNUInstallDirs)
# -DFM_STATE_DIR: persistence_location of the installed configuration;
# -DFM_SYSTEMD_UNITDIR: where the unit goes (Debian 12: /lib/systemd/system).
# Unset, they follow the prefix (not cached: a new prefix moves them).
if(NOT FM_STATE_DIR)
  set(FM_STATE_DIR "${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/ferromq")
endif()
if(NOT FM_SYSTEMD_UNITDIR)
  set(FM_SYSTEMD_UNITDIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
if(FM_SYSTEMD)
  set(FM_UNIT_TYPE notify)
else()
  set(FM_UNIT_TYPE simple) # a ferromq without sd_notify never reports ready
endif()

# The installed ferromq.conf is the example with persistence_location set.
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/packaging/ferromq.conf
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/ferromq.conf.example
          -DOUT=${CMAKE_BINARY_DIR}/packaging/ferromq.conf -DSTATE_DIR=${FM_STATE_DIR} -DCONF=${CMAKE_INSTALL_FULL_SYSCONFDIR}/ferromq/ferromq.conf
          -P ${CMAKE_SOURCE_DIR}/cmake/make_conf.cmake
  DEPENDS ${CMAKE_SOURCE_DIR}/ferromq.conf.example ${CMAKE_SOURCE_DIR}/cmake/make_conf.cmake
  COMMENT "Installed configuration from ferromq.conf.example")
configure_file(${CMAKE_SOURCE_DIR}/packaging/ferromq.service.in
  ${CMAKE_BINARY_DIR}/packaging/ferromq.service @ONLY)
set(fm_install_files ${CMAKE_BINARY_DIR}/packaging/ferromq.conf)

# Man pages from --help (help2man), when it is installed.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  foreach(spec "ferromq;8;an MQTT 3.1.1 and 5.0 broker"
               "ferromq-ctl;1;look at and operate a running ferromq"
               "ferromq-passwd;1;manage ferromq password files")
    list(GET spec 0 prog)
    list(GET spec 1 sect)
    list(GET spec 2 what)
    add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${prog}.${sect}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${HELP2MAN} --no-info --no-discard-stderr --section=${sect} --name=${what}
              --version-string=${PROJECT_VERSION} --output=${CMAKE_BINARY_DIR}/man/${prog}.${sect}
              $<TARGET_FILE:${prog}>
      DEPENDS ${prog}
      COMMENT "Man page of ${prog}")
    list(APPEND fm_install_files ${CMAKE_BINARY_DIR}/man/${prog}.${sect})
    install(FILES ${CMAKE_BINARY_DIR}/man/${prog}.${sect} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${sect})
  endforeach()
else()
  message(STATUS "help2man not found: no man pages (ferromq --help is the reference)")
endif()
add_custom_target(fm_install_files ALL DEPENDS ${fm_install_files})

install(TARGETS ferromq DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS ferromq-ctl ferromq-passwd DESTINATION ${CMAKE_INSTALL_BINDIR})
# An existing configuration is the administrator's: make install keeps it
# (the package has dpkg's conffile handling instead).
set(fm_conf_dir "${CMAKE_INSTALL_FULL_SYSCONFDIR}/ferromq")
install(CODE "
  if(EXISTS \"\$ENV{DESTDIR}${fm_conf_dir}/ferromq.conf\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}${fm_conf_dir}/ferromq.conf\")
  else()
    file(INSTALL \"${CMAKE_BINARY_DIR}/packaging/ferromq.conf\" DESTINATION \"${fm_conf_dir}\")
  endif()")
install(FILES ferromq.conf.example README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_BINARY_DIR}/packaging/ferromq.service DESTINATION ${FM_SYSTEMD_UNITDIR})
install(DIRECTORY DESTINATION ${FM_STATE_DIR})
