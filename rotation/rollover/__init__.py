"""CA rollover: moving a fleet from one Private CA to another in phases the fleet gates, never a timer.

The state is the issuance policy's ``rollovers`` section (:mod:`rotation.issuance.policy.rollovers`,
which also redirects issuance during ``move``); this package is the operator's side, by job:

- :mod:`~rotation.rollover.phases`: the phases, their work, their gates, ``abort`` (the entry points:
  ``plan``, ``start``, ``status``, ``advance``, ``abort`` on a :class:`~rotation.rollover.phases.FleetAccess`);
- :mod:`~rotation.rollover.gates`: what each gate reads from hosts, leaves and bundles (pure);
- :mod:`~rotation.rollover.bundles`: a CA added to or removed from a trust bundle (pure);
- :mod:`~rotation.rollover.reissue`: ``move``'s paced RotateSecret at half the issuer's quota;
- :mod:`~rotation.rollover.store`: the policy parameter read and written;
- :mod:`~rotation.rollover.aws_fleet`: the :class:`~rotation.rollover.phases.FleetAccess` on boto3.
"""
