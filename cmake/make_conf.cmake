# cmake -DIN=ferromq.conf.example -DOUT=ferromq.conf -DSTATE_DIR=/var/lib/ferromq
#       -DCONF=/etc/ferromq/ferromq.conf -P make_conf.cmake
# The installed configuration: the example, every option at its default and
# commented, but persistence_location set to the state directory.
file(READ ${IN} text)
set(line "#persistence_location ./data\n")
string(FIND "${text}" "${line}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${IN}: no line '#persistence_location ./data' to set")
endif()
string(REPLACE "${line}" "persistence_location ${STATE_DIR}\n" text "${text}")
string(REGEX REPLACE "^# ferromq.conf.example: every option, with its default.\n"
  "# ${CONF}: ferromq's configuration, read by ferromq.service.\n# Every option is here with its default. After an edit: systemctl reload ferromq\n# (the options that say they reload on SIGHUP) or systemctl restart ferromq.\n" text "${text}")
file(WRITE ${OUT} "${text}")
