"""Static facts about each simulated hardware/software combination.

One Platform per image the lab models: what `show version` prints, interface names,
how the crypto engine shows up in SA output, which log prefix family the debugs use.
Formats follow docs/domain.md §2.13 (show version) and §2.5 (flow_id prefixes).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Platform:
    key: str
    device_type: str  # netmiko device_type: "cisco_ios" or "cisco_xe"
    model: str  # as inventories name it, e.g. "ISR4451-X/K9"
    family: str  # "xe" (IOS-XE 16/17), "ios15" (classic 15.x), "ios124" (old 12.4)
    version: str  # IOSd version, e.g. "17.3.4a" or "15.7(3)M5"
    xe_version: str  # "17.03.04a" on XE, "" on classic IOS
    train: str  # XE release train name, e.g. "Amsterdam"
    software: str  # text before "(IMAGE)" in the IOS banner line
    image_name: str  # the part in parentheses, e.g. "X86_64_LINUX_IOSD-UNIVERSALK9-M"
    image_file: str  # `System image file is "..."`
    rom: str
    hardware_line: str  # "cisco ISR4451-X/K9 (2RU) processor with ..." (without "Cisco "/"cisco ")
    board_prefix: str  # first letters of the processor board ID
    wan_if: str
    lan_if: str
    flow_prefix: str  # flow_id prefix in `show crypto ipsec sa`
    compiled: str
    copyright_year: int
    is_asr: bool = False
    interfaces_line: str = "3 Gigabit Ethernet interfaces"
    nvram: str = "32768K bytes of non-volatile configuration memory."

    @property
    def is_xe(self) -> bool:
        return self.family == "xe"

    @property
    def xe_major(self) -> int:
        return int(self.xe_version.split(".")[0]) if self.xe_version else 0

    @property
    def config_version(self) -> str:
        """The `version` line at the top of running-config ("17.3", "15.7", "12.4")."""
        if self.is_xe:
            major, minor = self.xe_version.split(".")[:2]
            return f"{int(major)}.{int(minor)}"
        return self.version.split("(")[0]


_XE_IMAGE = "X86_64_LINUX_IOSD-UNIVERSALK9-M"

PLATFORMS: dict[str, Platform] = {
    p.key: p
    for p in (
        Platform(
            key="isr4451-17",
            device_type="cisco_xe",
            model="ISR4451-X/K9",
            family="xe",
            version="17.3.4a",
            xe_version="17.03.04a",
            train="Amsterdam",
            software="ISR Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:isr4400-universalk9.17.03.04a.SPA.bin",
            rom="16.9(4r)",
            hardware_line="ISR4451-X/K9 (2RU) processor with 1795979K/6147K bytes of memory.",
            board_prefix="FOC",
            wan_if="GigabitEthernet0/0/0",
            lan_if="GigabitEthernet0/0/1",
            flow_prefix="SW",
            compiled="Tue 20-Jul-21 04:59",
            copyright_year=2021,
            interfaces_line="4 Gigabit Ethernet interfaces",
        ),
        Platform(
            key="asr1001x-17",
            device_type="cisco_xe",
            model="ASR1001-X",
            family="xe",
            version="17.3.5",
            xe_version="17.03.05",
            train="Amsterdam",
            software="ASR1000 Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:asr1001x-universalk9.17.03.05.SPA.bin",
            rom="16.3(2r)",
            hardware_line="ASR1001-X (1NG) processor (revision 1NG) with 3755165K/6147K bytes of memory.",
            board_prefix="FXS",
            wan_if="GigabitEthernet0/0/0",
            lan_if="GigabitEthernet0/0/1",
            flow_prefix="HW",
            compiled="Thu 10-Feb-22 11:13",
            copyright_year=2022,
            is_asr=True,
            interfaces_line="6 Gigabit Ethernet interfaces\n2 Ten Gigabit Ethernet interfaces",
        ),
        Platform(
            key="c8000v-17",
            device_type="cisco_xe",
            model="C8000V",
            family="xe",
            version="17.9.4a",
            xe_version="17.09.04a",
            train="Cupertino",
            software="Virtual XE Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:packages.conf",
            rom="IOS-XE ROMMON",
            hardware_line="C8000V (VXE) processor (revision VXE) with 1987995K/3075K bytes of memory.",
            board_prefix="9SL",
            wan_if="GigabitEthernet1",
            lan_if="GigabitEthernet2",
            flow_prefix="CSR",
            compiled="Fri 20-Oct-23 10:16",
            copyright_year=2023,
        ),
        Platform(
            key="asr1002x-16",
            device_type="cisco_xe",
            model="ASR1002-X",
            family="xe",
            version="16.9.8",
            xe_version="16.09.08",
            train="Fuji",
            software="ASR1000 Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:asr1002x-universalk9.16.09.08.SPA.bin",
            rom="15.3(3r)S",
            hardware_line="ASR1002-X (2RU-X) processor (revision 2KP) with 3763456K/6147K bytes of memory.",
            board_prefix="JAE",
            wan_if="GigabitEthernet0/0/0",
            lan_if="GigabitEthernet0/0/1",
            flow_prefix="HW",
            compiled="Thu 22-Sep-22 03:14",
            copyright_year=2022,
            is_asr=True,
            interfaces_line="6 Gigabit Ethernet interfaces",
        ),
        Platform(
            key="c2911-15",
            device_type="cisco_ios",
            model="CISCO2911/K9",
            family="ios15",
            version="15.7(3)M5",
            xe_version="",
            train="",
            software="C2900 Software",
            image_name="C2900-UNIVERSALK9-M",
            image_file="flash0:c2900-universalk9-mz.SPA.157-3.M5.bin",
            rom="System Bootstrap, Version 15.0(1r)M15, RELEASE SOFTWARE (fc1)",
            hardware_line="CISCO2911/K9 (revision 1.0) with 483328K/40960K bytes of memory.",
            board_prefix="FTX",
            wan_if="GigabitEthernet0/0",
            lan_if="GigabitEthernet0/1",
            flow_prefix="Onboard VPN",
            compiled="Wed 30-Jan-19 08:14",
            copyright_year=2019,
            nvram="255K bytes of non-volatile configuration memory.",
        ),
        Platform(
            key="csr1000v-16",
            device_type="cisco_xe",
            model="CSR1000V",
            family="xe",
            version="16.9.8",
            xe_version="16.09.08",
            train="Fuji",
            software="Virtual XE Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:packages.conf",
            rom="IOS-XE ROMMON",
            hardware_line="CSR1000V (VXE) processor (revision VXE) with 2190795K/3075K bytes of memory.",
            board_prefix="9Z7",
            wan_if="GigabitEthernet1",
            lan_if="GigabitEthernet2",
            flow_prefix="CSR",
            compiled="Thu 22-Sep-22 03:14",
            copyright_year=2022,
        ),
        Platform(
            key="c8000v-17-9",
            device_type="cisco_xe",
            model="C8000V",
            family="xe",
            version="17.9.4a",
            xe_version="17.09.04a",
            train="Cupertino",
            software="Virtual XE Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:packages.conf",
            rom="IOS-XE ROMMON",
            hardware_line="C8000V (VXE) processor (revision VXE) with 1987995K/3075K bytes of memory.",
            board_prefix="9KX",
            wan_if="GigabitEthernet1",
            lan_if="GigabitEthernet2",
            flow_prefix="CSR",
            compiled="Fri 20-Oct-23 10:16",
            copyright_year=2023,
        ),
        Platform(
            key="c1841-124",
            device_type="cisco_ios",
            model="CISCO1841",
            family="ios124",
            version="12.4(24)T8",
            xe_version="",
            train="",
            software="1841 Software",
            image_name="C1841-ADVIPSERVICESK9-M",
            image_file="flash:c1841-advipservicesk9-mz.124-24.T8.bin",
            rom="System Bootstrap, Version 12.4(13r)T, RELEASE SOFTWARE (fc1)",
            hardware_line="1841 (revision 7.0) with 236544K/25600K bytes of memory.",
            board_prefix="FCZ",
            wan_if="FastEthernet0/0",
            lan_if="FastEthernet0/1",
            flow_prefix="FPGA",
            compiled="Tue 23-Aug-12 13:26",
            copyright_year=2012,
            interfaces_line="2 FastEthernet interfaces\n1 Virtual Private Network (VPN) Module",
            nvram="191K bytes of NVRAM.",
        ),
        Platform(
            key="isr4331-16",
            device_type="cisco_xe",
            model="ISR4331/K9",
            family="xe",
            version="16.12.5",
            xe_version="16.12.05",
            train="Gibraltar",
            software="ISR Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:isr4300-universalk9.16.12.05.SPA.bin",
            rom="16.7(4r)",
            hardware_line="ISR4331/K9 (1RU) processor with 1795979K/6147K bytes of memory.",
            board_prefix="FDO",
            wan_if="GigabitEthernet0/0/0",
            lan_if="GigabitEthernet0/0/1",
            flow_prefix="SW",
            compiled="Thu 28-Jan-21 13:26",
            copyright_year=2021,
        ),
        Platform(
            key="c1921-15",
            device_type="cisco_ios",
            model="CISCO1921/K9",
            family="ios15",
            version="15.1(4)M8",
            xe_version="",
            train="",
            software="C1900 Software",
            image_name="C1900-UNIVERSALK9-M",
            image_file="flash0:c1900-universalk9-mz.SPA.151-4.M8.bin",
            rom="System Bootstrap, Version 15.0(1r)M15, RELEASE SOFTWARE (fc1)",
            hardware_line="CISCO1921/K9 (revision 1.0) with 491520K/32768K bytes of memory.",
            board_prefix="FGL",
            wan_if="GigabitEthernet0/0",
            lan_if="GigabitEthernet0/1",
            flow_prefix="Onboard VPN",
            compiled="Tue 25-Mar-14 23:11",
            copyright_year=2014,
            interfaces_line="2 Gigabit Ethernet interfaces",
            nvram="255K bytes of non-volatile configuration memory.",
        ),
        Platform(
            key="isr4321-17",
            device_type="cisco_xe",
            model="ISR4321/K9",
            family="xe",
            version="17.6.5",
            xe_version="17.06.05",
            train="Bengaluru",
            software="ISR Software",
            image_name=_XE_IMAGE,
            image_file="bootflash:isr4300-universalk9.17.06.05.SPA.bin",
            rom="16.12(2r)",
            hardware_line="ISR4321/K9 (1RU) processor with 1647778K/6147K bytes of memory.",
            board_prefix="FLM",
            wan_if="GigabitEthernet0/0/0",
            lan_if="GigabitEthernet0/0/1",
            flow_prefix="SW",
            compiled="Wed 22-Mar-23 01:38",
            copyright_year=2023,
            interfaces_line="2 Gigabit Ethernet interfaces",
        ),
    )
}

# Hubs and spokes cycle through these (index = hub number - 1 / spoke slot).
HUB_PLATFORMS = ("isr4451-17", "asr1001x-17", "c8000v-17", "asr1002x-16")
SPOKE_PLATFORMS = (
    "c2911-15",
    "csr1000v-16",
    "c8000v-17-9",
    "c1841-124",
    "isr4331-16",
    "c1921-15",
    "isr4321-17",
    "c8000v-17",
)
