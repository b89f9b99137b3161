"""Plans shipped with cockpit (the lab's template, the production plan), inside the wheel as `cockpit.plans`."""
