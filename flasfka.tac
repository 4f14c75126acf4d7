"""`twistd -ny flasfka.tac`: flasfka with options from $FLASFKA_OPTIONS (e.g. "-p 5000 -e")."""

import os
import shlex

from twisted.application.service import Application

from flasfka.app.tap import makeService, options_from

options = options_from(shlex.split(os.environ.get("FLASFKA_OPTIONS", "")), "flasfka.tac")
application = Application("flasfka")
makeService(options).setServiceParent(application)
